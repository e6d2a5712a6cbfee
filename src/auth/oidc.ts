import { AsyncLocalStorage } from 'node:async_hooks';
import { decodeJwt, type JWTPayload } from 'jose';
import * as client from 'openid-client';
import type { Config } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { IdpEndpoint, Metrics } from '../observability/metrics.ts';

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
  /**
   * The same client for refresh-token grants, whose calls may run to `refreshCallTimeoutSeconds` (longer than
   * `httpTimeoutSeconds`); close() aborts the calls still running.
   */
  refreshConfiguration(): client.Configuration;
  /**
   * The refresh_token grant on the refresh configuration. A failure after the token endpoint answered 2xx (the ID
   * token's keys could not be fetched, say) rejects with a {@link TokenEndpointAnsweredError}: the IdP has taken
   * the refresh token by then, so the failure is no outage to retry through.
   */
  refreshGrant(refreshToken: string): ReturnType<typeof client.refreshTokenGrant>;
  close(): void;
}

/**
 * How long one refresh-token grant may run: never shorter than 30 s nor than three HTTP timeouts. A refresh that
 * was sent may have rotated the refresh token at the IdP, so it is left to finish rather than abandoned at the
 * request's deadline (abandoning it and resending the old token is what a rotating IdP revokes the grant for).
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2
 */
export function refreshCallTimeoutSeconds(httpTimeoutSeconds: number): number {
  return Math.max(30, 3 * httpTimeoutSeconds);
}

/**
 * Discovery plus the security switches openid-client leaves to the caller:
 * the ID token algorithm is pinned (an OP advertising "none" cannot downgrade us), ID token signatures
 * are verified even from the token endpoint, and http is allowed only for loopback or an explicit opt-in.
 * @see https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
 */
export function createOidcClient(oidc: Config['oidc'], log: Logger, metrics?: Pick<Metrics, 'idpCall'>): OidcClient {
  let current: client.Configuration | undefined;
  let forRefresh: client.Configuration | undefined;
  let closed = false;
  const closing = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const waiters: Array<() => void> = [];

  const clientMetadata: Partial<client.ClientMetadata> = {
    client_id: oidc.clientId,
    id_token_signed_response_alg: oidc.idTokenSigningAlg,
    ...(oidc.clientSecret ? { client_secret: oidc.clientSecret } : {}),
  };
  const clientAuth = oidc.clientSecret ? client.ClientSecretBasic(oidc.clientSecret) : client.None();
  const execute = oidc.allowInsecureIssuer ? [client.allowInsecureRequests] : [];

  const secure = (configuration: client.Configuration, timeoutSeconds: number) => {
    if (oidc.allowInsecureIssuer) client.allowInsecureRequests(configuration);
    client.enableNonRepudiationChecks(configuration);
    configuration.timeout = timeoutSeconds;
    return configuration;
  };

  // Every call to the IdP is timed by the endpoint it goes to (a fixed set), never by its URL.
  let endpoints: client.ServerMetadata | undefined;
  const endpointOf = (url: string): IdpEndpoint => {
    if (endpoints === undefined || url.includes('/.well-known/')) return 'discovery';
    if (url === endpoints.token_endpoint) return 'token';
    if (url === endpoints.userinfo_endpoint) return 'userinfo';
    if (url === endpoints.jwks_uri) return 'jwks';
    if (url === endpoints.revocation_endpoint) return 'revocation';
    return 'other';
  };
  const timedFetch = async (url: string, init: RequestInit): Promise<Response> => {
    if (!metrics) return fetch(url, init);
    const started = performance.now();
    const endpoint = endpointOf(url);
    try {
      const res = await fetch(url, init);
      metrics.idpCall(endpoint, (performance.now() - started) / 1000, res.status >= 500);
      return res;
    } catch (err) {
      metrics.idpCall(endpoint, (performance.now() - started) / 1000, true);
      throw err;
    }
  };
  const customFetch: client.CustomFetch = (url, options) =>
    // FetchBody is what fetch takes; only TypeScript's Uint8Array<ArrayBufferLike> variance tells them apart.
    timedFetch(url, { ...options, body: options.body as BodyInit | null | undefined });

  // Per refresh_token grant call: whether its token endpoint has answered 2xx (set by the refresh fetch above).
  const grantCalls = new AsyncLocalStorage<{ answered: boolean }>();

  function refreshClient(configuration: client.Configuration): client.Configuration {
    const metadata = JSON.parse(JSON.stringify(configuration.serverMetadata())) as client.ServerMetadata;
    const refreshing = secure(
      new client.Configuration(metadata, oidc.clientId, clientMetadata, clientAuth),
      refreshCallTimeoutSeconds(oidc.httpTimeoutSeconds),
    );
    const tokenEndpoint = metadata.token_endpoint;
    refreshing[client.customFetch] = async (url, options) => {
      const res = await timedFetch(url, {
        ...options,
        // FetchBody is what fetch takes; only TypeScript's Uint8Array<ArrayBufferLike> variance tells them apart.
        body: options.body as BodyInit | null | undefined,
        signal: options.signal ? AbortSignal.any([options.signal, closing.signal]) : closing.signal,
      });
      const call = grantCalls.getStore();
      if (call && res.ok && url === tokenEndpoint) call.answered = true;
      return res;
    };
    return refreshing;
  }

  async function discover(): Promise<client.Configuration> {
    const discovered = await client.discovery(new URL(oidc.issuer), oidc.clientId, clientMetadata, clientAuth, {
      execute,
      timeout: oidc.httpTimeoutSeconds,
      ...(metrics ? { [client.customFetch]: customFetch } : {}),
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
    if (metrics) {
      endpoints = configuration.serverMetadata();
      configuration[client.customFetch] = customFetch;
    }
    return secure(configuration, oidc.httpTimeoutSeconds);
  }

  async function attempt(delayMs: number): Promise<void> {
    if (closed) return;
    try {
      const discovered = await discover();
      forRefresh = refreshClient(discovered);
      current = discovered;
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
    refreshConfiguration() {
      if (!forRefresh) throw new GatehouseError('idp_unavailable', { logDetail: 'identity provider metadata not loaded yet' });
      return forRefresh;
    },
    async refreshGrant(refreshToken) {
      if (!forRefresh) throw new GatehouseError('idp_unavailable', { logDetail: 'identity provider metadata not loaded yet' });
      const configuration = forRefresh;
      const call = { answered: false };
      try {
        return await grantCalls.run(call, () => client.refreshTokenGrant(configuration, refreshToken));
      } catch (err) {
        // Only what would read as an outage needs the wrapper: a refused answer is fatal (and named) on its own.
        throw call.answered && classifyIdpError(err).transient ? new TokenEndpointAnsweredError(err) : err;
      }
    },
    close() {
      closed = true;
      closing.abort();
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * What an openid-client failure says, read from its `code` and the OAuth `error` of the IdP's answer, never from
 * message text. `invalid_grant`: the IdP refused the code or refresh token (invalid, expired, revoked, reused);
 * `access_denied`: the user or the IdP declined; `failed`: anything else (unreachable, a malformed answer, another
 * OAuth error, or a GatehouseError such as idp_unavailable before discovery).
 *
 * `transient` sorts a failed refresh: true when the IdP could not be reached or did not answer (a transport error,
 * a timeout, idp_unavailable before discovery, an HTTP status other than 200 without an OAuth error, or an OAuth
 * error other than `invalid_grant`), so the refresh token may still be good and the session is kept for a later
 * try; false when the IdP refused the grant (`invalid_grant`) or answered 200 with a response that fails validation
 * (signature, `alg`, `iss`, `aud`, `azp`, `exp`, `iat`, `sub`, `token_type`, JSON shape, an ID token that changed
 * identity: {@link checkRefreshedIdToken}), and for any failure not recognised (fail closed). An answer we refuse is not
 * an outage: the IdP has taken the refresh token we sent (and, rotating, replaced it with one we refuse to trust), so
 * sending it again is reuse.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2
 */
export interface IdpFailure {
  readonly kind: 'invalid_grant' | 'access_denied' | 'failed';
  /** Whether a refresh that failed this way may be tried again with the same refresh token (see above). */
  readonly transient: boolean;
  /** openid-client's (or the transport's) error code, for the log. */
  readonly code: string | undefined;
  /** The OAuth `error` the IdP answered with, for the log. */
  readonly error: string | undefined;
  /** One line for the log: the code, the OAuth error, the HTTP status or the ID token claim that decided. */
  readonly reason: string;
}

/** What {@link checkRefreshedIdToken} throws: a refreshed ID token that names another identity than the login's. */
/**
 * A refresh that failed after the token endpoint answered 2xx: the refresh token is spent (a rotating IdP has already
 * issued its successor), so {@link classifyIdpError} reads it as fatal whatever failed afterwards.
 */
export class TokenEndpointAnsweredError extends Error {
  constructor(cause: unknown) {
    super('the token endpoint answered, then the refresh failed', { cause });
    this.name = 'TokenEndpointAnsweredError';
  }
}

export class IdTokenChangedError extends Error {
  readonly code = 'GATEHOUSE_ID_TOKEN_CHANGED';
  /** The claim that differs. */
  readonly claim: string;
  constructor(claim: string) {
    super(`refreshed ID token changed its ${claim}`);
    this.name = 'IdTokenChangedError';
    this.claim = claim;
  }
}

/** Node's system error codes (ECONNREFUSED, ECONNRESET, ...) and undici's (UND_ERR_SOCKET, ...): the transport failed. */
const TRANSPORT_CODE = /^(E[A-Z0-9]+|UND_ERR_[A-Z_]+)$/;

/** openid-client's codes for an IdP that did not answer in time, or a call we gave up on. */
const GAVE_UP = new Set(['OAUTH_TIMEOUT', 'OAUTH_ABORT']);

/**
 * openid-client's codes for an HTTP answer of the wrong status or content type (its `cause` is the Response), and for
 * a 401 with a WWW-Authenticate challenge (the client's credentials, not the user's grant).
 */
const UNEXPECTED_ANSWER = new Set(['OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_RESPONSE_IS_NOT_JSON']);

function statusOf(value: unknown): number | undefined {
  const status = typeof value === 'object' && value !== null ? (value as { status?: unknown }).status : undefined;
  return typeof status === 'number' ? status : undefined;
}

/** The one place openid-client errors are classified (login, refresh and logout all ask here). */
export function classifyIdpError(err: unknown): IdpFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; error?: unknown; cause?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const error = typeof e.error === 'string' ? e.error : undefined;
  const kind: IdpFailure['kind'] =
    code === 'OAUTH_RESPONSE_BODY_ERROR' && (error === 'invalid_grant' || error === 'access_denied') ? error : 'failed';
  const base = { kind, code, error };
  if (err instanceof GatehouseError) return { ...base, transient: err.code === 'idp_unavailable', reason: err.code };
  if (err instanceof TokenEndpointAnsweredError) {
    return { ...base, transient: false, reason: `token endpoint answered, then ${classifyIdpError(err.cause).reason}` };
  }
  if (code === 'OAUTH_RESPONSE_BODY_ERROR') return { ...base, transient: error !== 'invalid_grant', reason: `${code} (${error ?? '?'})` };
  if (code !== undefined && (TRANSPORT_CODE.test(code) || GAVE_UP.has(code) || code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE')) {
    return { ...base, transient: true, reason: code };
  }
  // fetch() rejects with a bare TypeError ("fetch failed") when the connection fails; openid-client passes it on.
  // Its own TypeErrors carry a code (ERR_INVALID_ARG_*): a call we got wrong, which no retry mends.
  if (err instanceof TypeError && code === undefined) {
    const cause = (e.cause as { code?: unknown } | undefined)?.code;
    return { ...base, transient: true, reason: `fetch failed${typeof cause === 'string' ? ` (${cause})` : ''}` };
  }
  if (code !== undefined && UNEXPECTED_ANSWER.has(code)) {
    const status = statusOf(e.cause);
    // Only a 200 that fails validation is a refused answer; any other status means the IdP did not answer the request.
    return { ...base, transient: status !== undefined && status !== 200, reason: `${code} (HTTP ${status ?? '?'})` };
  }
  if (err instanceof IdTokenChangedError) return { ...base, transient: false, reason: `ID token changed its ${err.claim}` };
  return { ...base, transient: false, reason: code ?? (err instanceof Error ? err.name : 'error') };
}

/**
 * Refuses a refreshed ID token that does not continue the session's identity: its `iss`, `sub`, `aud` and `azp` must
 * be those of the ID token issued at login (`azp` absent then means absent now). openid-client checks the token on
 * its own (signature, `iss` against the issuer, `aud` containing the client, `exp`, `iat`) but cannot know the
 * original. Throws an {@link IdTokenChangedError}, which {@link classifyIdpError} reads as fatal.
 * @see https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokenResponse
 */
export function checkRefreshedIdToken(
  claims: client.IDToken | undefined,
  original: { readonly sub: string; readonly idToken: string | undefined },
): void {
  if (!claims) return;
  const changed = (claim: string) => new IdTokenChangedError(claim);
  if (claims.sub !== original.sub) throw changed('sub');
  if (original.idToken === undefined) return;
  let before: JWTPayload;
  try {
    before = decodeJwt(original.idToken);
  } catch {
    // The stored token was verified at login: unreadable now means a record we did not write.
    throw changed('shape (the login ID token is unreadable)');
  }
  if (claims.iss !== before.iss) throw changed('iss');
  if (JSON.stringify([claims.aud].flat()) !== JSON.stringify([before.aud].flat())) throw changed('aud');
  if (claims['azp'] !== before.azp) throw changed('azp');
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
