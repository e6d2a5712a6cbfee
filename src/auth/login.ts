import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Config } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { isWellFormedId } from '../session/crypto.ts';
import type { Session, SessionClient, SessionManager, SessionSecret, UserClaims } from '../session/sessions.ts';
import type { Blocklist } from '../revocation/blocklist.ts';
import type { KeyValue } from '../store/store.ts';
import type { OidcClient } from './oidc.ts';
import { classifyIdpError, translateIdpError } from './oidc.ts';
import { safeLocalPath } from './redirect.ts';
import { accessTokenExpiry, peekJwtClaims } from './tokens.ts';

const TRANSACTION_TTL_MS = 10 * 60 * 1000;
const PROTOCOL_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 's_hash', 'azp', 'jti', 'sid']);
const MAX_CLAIMS_BYTES = 8192;

/**
 * The `prompt` values an SPA may ask for on /auth/login (OIDC Core §3.1.2.1): `none` for a silent session check,
 * `login` and `select_account` for "log in as someone else", `consent` to show the consent screen again.
 */
export const LOGIN_PROMPTS = ['none', 'login', 'consent', 'select_account'] as const;
export type LoginPrompt = (typeof LOGIN_PROMPTS)[number];
const MAX_LOGIN_HINT_LENGTH = 256;

/**
 * The answers to a `prompt=none` login that mean "this user would have to interact": the browser is signed out at
 * the IdP, not failing (OIDC Core §3.1.2.6).
 */
const INTERACTION_NEEDED = new Set(['login_required', 'interaction_required', 'consent_required', 'account_selection_required']);

interface Transaction {
  verifier: string;
  nonce: string;
  next: string;
  /** Hash of this login's binding cookie: a callback finished in another browser (login CSRF) is refused. */
  binding: string;
  createdAt: number;
  prompt?: string;
}

export interface LoginStart {
  readonly authorizationUrl: string;
  /** Names this login's own binding cookie (see loginSlot), so logins started in several tabs never share one. */
  readonly slot: string;
  /** The binding cookie's value, fresh for every login. */
  readonly binding: string;
}

export type LoginResult =
  | {
      readonly kind: 'signed_in';
      /** The new session's secret, for the Set-Cookie header and nothing else. */
      readonly secret: SessionSecret;
      readonly session: Session;
      readonly next: string;
    }
  /** A `prompt=none` login the IdP could not complete without the user: back to `next`, with no session made. */
  | { readonly kind: 'signed_out'; readonly next: string };

export interface LoginFlow {
  /** `prompt` and `loginHint` come from the SPA (query parameters): anything outside the allowlist is refused with bad_request. */
  begin(input: { next: unknown; prompt?: unknown; loginHint?: unknown }): Promise<LoginStart>;
  /**
   * `query` is the raw query string of the callback (after '?'); `binding` is the value of the binding cookie
   * named by `loginSlot(state)`; `client` is where the login came from, kept for the admin session list.
   */
  complete(input: {
    query: string;
    binding: string | undefined;
    previousSecret: SessionSecret | undefined;
    client?: SessionClient;
  }): Promise<LoginResult>;
  /** Destroys the session and returns the IdP end-session URL when the IdP has one. */
  logout(session: Session | undefined): Promise<{ logoutUrl?: string }>;
}

/** The stored login transaction, field by field; undefined when it is not one this code wrote. */
function parseTransaction(raw: string): Transaction | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { verifier, nonce, next, binding, createdAt, prompt } = value as Record<string, unknown>;
  if (typeof verifier !== 'string' || typeof nonce !== 'string' || typeof next !== 'string' || typeof binding !== 'string')
    return undefined;
  if (typeof createdAt !== 'number' || (prompt !== undefined && typeof prompt !== 'string')) return undefined;
  return { verifier, nonce, next, binding, createdAt, ...(prompt !== undefined ? { prompt } : {}) };
}

const txKey = (state: string) => `tx:${createHash('sha256').update(state).digest('base64url')}`;
const bindingHash = (value: string) => createHash('sha256').update(`binding:${value}`).digest('base64url');

/**
 * The suffix of the binding cookie of the login whose state this is. Each login has a cookie of its own, found
 * again from the callback's state, so two tabs logging in at once never overwrite or clear each other's
 * (security-cases row 138; oauth2-proxy's per-request CSRF cookies, #3258).
 */
export function loginSlot(state: string): string {
  return createHash('sha256').update(`slot:${state}`).digest('base64url').slice(0, 16);
}

function loginOptions(prompt: unknown, loginHint: unknown): { prompt?: LoginPrompt; loginHint?: string } {
  const out: { prompt?: LoginPrompt; loginHint?: string } = {};
  if (prompt !== undefined) {
    const known = LOGIN_PROMPTS.find((p) => p === prompt);
    if (!known)
      throw new GatehouseError('bad_request', {
        details: { parameter: 'prompt', allowed: [...LOGIN_PROMPTS] },
        logDetail: 'login prompt outside the allowlist',
      });
    out.prompt = known;
  }
  if (loginHint !== undefined) {
    // A hint is an e-mail address or a user name: printable, bounded, one value.
    if (
      typeof loginHint !== 'string' ||
      loginHint.length === 0 ||
      loginHint.length > MAX_LOGIN_HINT_LENGTH ||
      /[^\x20-\x7e\u00a0-\uffff]/.test(loginHint)
    )
      throw new GatehouseError('bad_request', {
        details: { parameter: 'login_hint' },
        logDetail: 'login_hint empty, too long or with control characters',
      });
    out.loginHint = loginHint;
  }
  return out;
}

function single(params: URLSearchParams, name: string): string | undefined {
  const all = params.getAll(name);
  // RFC 6749 §3.1: parameters must not be repeated; a repeated one is an injection attempt.
  if (all.length > 1) throw new GatehouseError('bad_request', { logDetail: `callback parameter ${name} repeated` });
  return all[0];
}

function pickClaims(...sources: Array<Record<string, unknown> | undefined>): UserClaims {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const source of sources) {
    for (const [k, v] of Object.entries(source ?? {})) {
      if (PROTOCOL_CLAIMS.has(k) || k === '__proto__' || v === undefined || v === null) continue;
      if (out[k] === undefined) out[k] = v;
    }
  }
  // email_verified speaks for the address beside it: from another source it could vouch for a different one.
  const emailSource = sources.find((source) => source?.['email'] !== undefined && source['email'] !== null);
  if (emailSource) {
    const verified = emailSource['email_verified'];
    if (verified === undefined || verified === null) delete out['email_verified'];
    else out['email_verified'] = verified;
  }
  if (JSON.stringify(out).length > MAX_CLAIMS_BYTES) {
    // Keep sessions small: an IdP stuffing huge claims gets only the identity basics kept.
    return {
      sub: String(out['sub']),
      ...(typeof out['email'] === 'string' ? { email: out['email'] } : {}),
      ...(out['email_verified'] === true ? { email_verified: true } : {}),
      ...(typeof out['name'] === 'string' ? { name: out['name'] } : {}),
    };
  }
  return { ...out, sub: String(out['sub']) } as UserClaims;
}

export function createLoginFlow(deps: {
  oidc: OidcClient;
  store: KeyValue;
  sessions: SessionManager;
  blocklist: Blocklist;
  config: Config['oidc'];
  log: Logger;
  now?: () => number;
}): LoginFlow {
  const { oidc, store, sessions, blocklist, config, log } = deps;
  const now = deps.now ?? Date.now;

  return {
    async begin({ next, prompt: askedPrompt, loginHint: askedHint }) {
      const asked = loginOptions(askedPrompt, askedHint);
      const configuration = oidc.configuration();
      const binding = randomBytes(32).toString('base64url');
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const prompt = asked.prompt ?? config.prompt;
      const tx: Transaction = {
        verifier,
        nonce,
        next: safeLocalPath(next),
        binding: bindingHash(binding),
        createdAt: now(),
        ...(prompt ? { prompt } : {}),
      };
      try {
        await store.set(txKey(state), JSON.stringify(tx), TRANSACTION_TTL_MS);
      } catch (err) {
        throw new GatehouseError('session_store_unavailable', { cause: err });
      }
      const params: Record<string, string> = {
        redirect_uri: config.redirectUri,
        scope: config.scopes,
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      };
      if (prompt) params['prompt'] = prompt;
      if (asked.loginHint !== undefined) params['login_hint'] = asked.loginHint;
      if (config.idTokenMaxAgeSeconds !== undefined) params['max_age'] = String(config.idTokenMaxAgeSeconds);
      return { authorizationUrl: client.buildAuthorizationUrl(configuration, params).href, slot: loginSlot(state), binding };
    },

    async complete({ query, binding, previousSecret, client: openedFrom }) {
      const params = new URLSearchParams(query);
      for (const name of ['code', 'state', 'iss', 'error', 'id_token', 'access_token', 'token']) single(params, name);
      const state = params.get('state');
      if (!state) throw new GatehouseError('invalid_state', { logDetail: 'callback without state' });
      let raw: string | null;
      try {
        raw = await store.take(txKey(state));
      } catch (err) {
        throw new GatehouseError('session_store_unavailable', { cause: err });
      }
      if (!raw) throw new GatehouseError('invalid_state', { logDetail: 'unknown, expired or used state' });
      const tx = parseTransaction(raw);
      if (!tx) throw new GatehouseError('invalid_state', { logDetail: 'unreadable login transaction' });
      if (!isWellFormedId(binding) || bindingHash(binding) !== tx.binding) {
        throw new GatehouseError('invalid_state', { logDetail: 'callback from a browser that did not start this login' });
      }
      if (params.has('id_token') || params.has('access_token') || params.has('token')) {
        // Only response_type=code is used; tokens in the front channel are an injection attempt (RFC 9700 §4.6).
        // Checked after the transaction is consumed, so the injected attempt also ends this login.
        throw new GatehouseError('bad_request', { logDetail: 'tokens in the callback query' });
      }
      // The store TTL is one bound; the clock is the other, so a store that kept the record too long cannot extend it.
      if (now() - tx.createdAt >= TRANSACTION_TTL_MS) throw new GatehouseError('invalid_state', { logDetail: 'login transaction expired' });
      const configuration = oidc.configuration();
      // RFC 9207 §2.4, checked here rather than read back from openid-client's wrapped errors: a response naming
      // another issuer (mix-up), or none when this IdP always sends one, is refused before any other endpoint is called,
      // error responses included. Exact string comparison, no normalisation.
      const iss = params.get('iss');
      const metadata = configuration.serverMetadata();
      if (iss !== null ? iss !== metadata.issuer : metadata.authorization_response_iss_parameter_supported === true) {
        throw new GatehouseError('bad_request', {
          logDetail: iss === null ? 'callback without iss' : 'callback iss does not match the issuer',
        });
      }
      const idpError = params.get('error');
      if (idpError && tx.prompt === 'none' && INTERACTION_NEEDED.has(idpError)) {
        log.info({ idpError }, 'silent login (prompt=none): not signed in at the IdP');
        return { kind: 'signed_out', next: tx.next };
      }
      if (idpError) {
        throw new GatehouseError('login_failed', {
          details: { idpError: /^[a-z_]{1,64}$/.test(idpError) ? idpError : 'invalid' },
          logDetail: `identity provider returned error=${idpError.slice(0, 64)}`,
        });
      }
      if (!params.get('code')) throw new GatehouseError('bad_request', { logDetail: 'callback without code' });
      const callbackUrl = new URL(config.redirectUri);
      callbackUrl.search = query;
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
          pkceCodeVerifier: tx.verifier,
          expectedState: state,
          expectedNonce: tx.nonce,
          idTokenExpected: true,
          ...(config.idTokenMaxAgeSeconds !== undefined ? { maxAge: config.idTokenMaxAgeSeconds } : {}),
        });
      } catch (err) {
        throw translateIdpError(err, 'code exchange');
      }
      const idClaims = tokens.claims();
      if (!idClaims) throw new GatehouseError('idp_error', { logDetail: 'token response without an ID token' });
      let userinfo: Record<string, unknown> | undefined;
      if ((idClaims['email'] === undefined || idClaims['name'] === undefined) && configuration.serverMetadata().userinfo_endpoint) {
        try {
          userinfo = await client.fetchUserInfo(configuration, tokens.access_token, idClaims.sub);
        } catch (err) {
          throw translateIdpError(err, 'userinfo');
        }
      }
      const claims = pickClaims(idClaims, userinfo);
      const at = now();
      const accessTokenExpiresAt = accessTokenExpiry(tokens.expiresIn(), tokens.access_token, at);
      const accessTokenJti = peekJwtClaims(tokens.access_token)?.jti;
      if (previousSecret !== undefined) {
        // Fixation defence: whatever session the browser had before is destroyed, and a new secret is issued.
        const previous = await sessions.load(previousSecret).catch(() => undefined);
        if (previous) await sessions.destroy(previous.storeKey);
      }
      const created = await sessions.create({
        claims,
        ...(openedFrom ? { client: openedFrom } : {}),
        ...(typeof idClaims['sid'] === 'string' ? { sid: idClaims['sid'] } : {}),
        tokens: {
          accessToken: tokens.access_token,
          ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
          ...(tokens.id_token ? { idToken: tokens.id_token } : {}),
        },
        ...(accessTokenExpiresAt !== undefined ? { accessTokenExpiresAt } : {}),
        ...(accessTokenJti ? { accessTokenJti } : {}),
      });
      log.info({ session: created.session.storeKey, sub: claims.sub }, 'login completed');
      return { kind: 'signed_in', secret: created.secret, session: created.session, next: tx.next };
    },

    async logout(session) {
      if (!session) return {};
      await sessions.destroy(session.storeKey);
      if (session.accessTokenJti) {
        // The access token may still be replayed as a bearer token until it expires: block its jti.
        const until = session.accessTokenExpiresAt ?? now() + 24 * 3600 * 1000;
        await blocklist
          .revokeJti(session.accessTokenJti, until)
          .catch((err: unknown) => log.error({ err }, 'could not blocklist the access token on logout'));
      }
      let configuration: client.Configuration;
      try {
        configuration = oidc.configuration();
      } catch {
        return {};
      }
      if (session.tokens.refreshToken && configuration.serverMetadata().revocation_endpoint) {
        try {
          await client.tokenRevocation(configuration, session.tokens.refreshToken, { token_type_hint: 'refresh_token' });
        } catch (err) {
          // The session is gone either way; an IdP that cannot revoke now must not keep the user logged in here.
          log.warn({ session: session.storeKey, err: { code: classifyIdpError(err).code } }, 'refresh token revocation at the IdP failed');
        }
      }
      if (!configuration.serverMetadata().end_session_endpoint) return {};
      const params: Record<string, string> = { post_logout_redirect_uri: config.postLogoutRedirectUri, client_id: config.clientId };
      if (session.tokens.idToken) params['id_token_hint'] = session.tokens.idToken;
      return { logoutUrl: client.buildEndSessionUrl(configuration, params).href };
    },
  };
}
