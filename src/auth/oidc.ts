import * as client from 'openid-client';
import type { Config } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';

export interface OidcClient {
  /** Starts discovery in the background, retrying with backoff until it succeeds or close() is called. */
  start(): void;
  /** Resolves once discovery has succeeded (or rejects after timeoutMs). */
  whenReady(timeoutMs: number): Promise<void>;
  isReady(): boolean;
  /** One discovery attempt, without retries or keeping its result: rejects with its cause (`gatehouse check --connect`). */
  discoverOnce(): Promise<void>;
  /** The client configuration; throws idp_unavailable while discovery has not succeeded. */
  configuration(): client.Configuration;
  close(): void;
}

/**
 * Discovery plus the security switches openid-client leaves to the caller:
 * the ID token algorithm is pinned (an OP advertising "none" cannot downgrade us), ID token signatures
 * are verified even from the token endpoint, and http is allowed only for loopback or an explicit opt-in.
 * @see https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
 */
export function createOidcClient(oidc: Config['oidc'], log: Logger): OidcClient {
  let current: client.Configuration | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const waiters: Array<() => void> = [];

  const clientMetadata: Partial<client.ClientMetadata> = {
    client_id: oidc.clientId,
    id_token_signed_response_alg: oidc.idTokenSigningAlg,
    ...(oidc.clientSecret ? { client_secret: oidc.clientSecret } : {}),
  };
  const clientAuth = oidc.clientSecret ? client.ClientSecretBasic(oidc.clientSecret) : client.None();
  const execute = oidc.allowInsecureIssuer ? [client.allowInsecureRequests] : [];

  async function discover(): Promise<client.Configuration> {
    const discovered = await client.discovery(new URL(oidc.issuer), oidc.clientId, clientMetadata, clientAuth, {
      execute,
      timeout: oidc.httpTimeoutSeconds,
    });
    const overrides = oidc.endpoints;
    const configuration =
      Object.keys(overrides).length === 0
        ? discovered
        : new client.Configuration(
            { ...(JSON.parse(JSON.stringify(discovered.serverMetadata())) as client.ServerMetadata), ...overrides },
            oidc.clientId,
            clientMetadata,
            clientAuth,
          );
    if (oidc.allowInsecureIssuer) client.allowInsecureRequests(configuration);
    client.enableNonRepudiationChecks(configuration);
    configuration.timeout = oidc.httpTimeoutSeconds;
    return configuration;
  }

  async function attempt(delayMs: number): Promise<void> {
    if (closed) return;
    try {
      current = await discover();
      log.info({ issuer: oidc.issuer }, 'identity provider metadata loaded');
      for (const w of waiters.splice(0)) w();
    } catch (err) {
      if (closed) return;
      log.error(
        { err: { message: (err as Error).message, code: (err as { code?: string }).code }, issuer: oidc.issuer, retryInMs: delayMs },
        'identity provider discovery failed',
      );
      timer = setTimeout(() => void attempt(Math.min(delayMs * 2, 30_000)), delayMs);
      timer.unref();
    }
  }

  return {
    start() {
      void attempt(1000);
    },
    whenReady(timeoutMs) {
      if (current) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('identity provider discovery did not succeed in time')), timeoutMs);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
    isReady: () => current !== undefined,
    discoverOnce: async () => {
      await discover();
    },
    configuration() {
      if (!current) throw new GatehouseError('idp_unavailable', { logDetail: 'identity provider metadata not loaded yet' });
      return current;
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * What an openid-client failure says, read from its `code` and the OAuth `error` of the IdP's answer, never from
 * message text. `invalid_grant`: the IdP refused the code or refresh token (invalid, expired, revoked, reused);
 * `access_denied`: the user or the IdP declined; `failed`: anything else (unreachable, a malformed answer, another
 * OAuth error, or a GatehouseError such as idp_unavailable before discovery).
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export interface IdpFailure {
  readonly kind: 'invalid_grant' | 'access_denied' | 'failed';
  /** openid-client's (or the transport's) error code, for the log. */
  readonly code: string | undefined;
  /** The OAuth `error` the IdP answered with, for the log. */
  readonly error: string | undefined;
}

/** The one place openid-client errors are classified (login, refresh and logout all ask here). */
export function classifyIdpError(err: unknown): IdpFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; error?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const error = typeof e.error === 'string' ? e.error : undefined;
  const kind = code === 'OAUTH_RESPONSE_BODY_ERROR' && (error === 'invalid_grant' || error === 'access_denied') ? error : 'failed';
  return { kind, code, error };
}

/**
 * openid-client failures on the login path → our codes (see classifyIdpError).
 * A refusal tied to the user's grant is a 400; anything that says the IdP misbehaved or is unreachable is a 502.
 */
export function translateIdpError(err: unknown, stage: string): GatehouseError {
  if (err instanceof GatehouseError) return err;
  const failure = classifyIdpError(err);
  const name = (err as { name?: string } | null)?.name;
  const logDetail = `${stage}: ${failure.code ?? name ?? 'error'}${failure.error ? ` (${failure.error})` : ''}`;
  if (failure.kind !== 'failed') return new GatehouseError('login_failed', { cause: err, logDetail });
  return new GatehouseError('idp_error', { cause: err, logDetail });
}
