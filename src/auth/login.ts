import { createHash, randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import type { Config } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { isWellFormedId } from '../session/crypto.ts';
import type { Session, SessionManager, UserClaims } from '../session/sessions.ts';
import type { Store } from '../store/store.ts';
import type { OidcClient } from './oidc.ts';
import { translateIdpError } from './oidc.ts';
import { safeLocalPath } from './redirect.ts';

const TRANSACTION_TTL_MS = 10 * 60 * 1000;
const PROTOCOL_CLAIMS = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'at_hash', 'c_hash', 's_hash', 'azp', 'jti', 'sid']);
const MAX_CLAIMS_BYTES = 8192;

interface Transaction {
  verifier: string;
  nonce: string;
  next: string;
  /** Hash of the browser-binding cookie: a callback finished in another browser (login CSRF) is refused. */
  binding: string;
  createdAt: number;
}

export interface LoginStart {
  readonly authorizationUrl: string;
  /** The browser-binding cookie value to (re)set with the redirect. */
  readonly binding: string;
}

export interface LoginResult {
  readonly id: string;
  readonly session: Session;
  readonly next: string;
}

export interface LoginFlow {
  begin(input: { next: unknown; binding: string | undefined }): Promise<LoginStart>;
  /** `query` is the raw query string of the callback (after '?'). */
  complete(input: { query: string; binding: string | undefined; previousSessionCookie: string | undefined }): Promise<LoginResult>;
  /** Destroys the session and returns the IdP end-session URL when the IdP has one. */
  logout(session: Session | undefined): Promise<{ logoutUrl?: string }>;
}

const txKey = (state: string) => `tx:${createHash('sha256').update(state).digest('base64url')}`;
const bindingHash = (value: string) => createHash('sha256').update(`binding:${value}`).digest('base64url');

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
  if (JSON.stringify(out).length > MAX_CLAIMS_BYTES) {
    // Keep sessions small: an IdP stuffing huge claims gets only the identity basics kept.
    return { sub: String(out['sub']), ...(typeof out['email'] === 'string' ? { email: out['email'] } : {}), ...(typeof out['name'] === 'string' ? { name: out['name'] } : {}) };
  }
  return { ...out, sub: String(out['sub']) } as UserClaims;
}

function accessTokenExpiry(expiresIn: number | undefined, accessToken: string, at: number): number | undefined {
  if (expiresIn !== undefined) return at + expiresIn * 1000;
  const parts = accessToken.split('.');
  if (parts.length === 3 && parts[1]) {
    try {
      const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown };
      if (typeof payload.exp === 'number') return payload.exp * 1000;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function createLoginFlow(deps: {
  oidc: OidcClient;
  store: Store;
  sessions: SessionManager;
  config: Config['oidc'];
  log: Logger;
  now?: () => number;
}): LoginFlow {
  const { oidc, store, sessions, config, log } = deps;
  const now = deps.now ?? Date.now;

  return {
    async begin({ next, binding }) {
      const configuration = oidc.configuration();
      const browserBinding = isWellFormedId(binding) ? binding : randomBytes(32).toString('base64url');
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const tx: Transaction = { verifier, nonce, next: safeLocalPath(next), binding: bindingHash(browserBinding), createdAt: now() };
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
      if (config.prompt) params['prompt'] = config.prompt;
      if (config.idTokenMaxAgeSeconds !== undefined) params['max_age'] = String(config.idTokenMaxAgeSeconds);
      return { authorizationUrl: client.buildAuthorizationUrl(configuration, params).href, binding: browserBinding };
    },

    async complete({ query, binding, previousSessionCookie }) {
      const params = new URLSearchParams(query);
      for (const name of ['code', 'state', 'iss', 'error', 'id_token', 'access_token', 'token']) single(params, name);
      if (params.has('id_token') || params.has('access_token') || params.has('token')) {
        // Only response_type=code is used; tokens in the front channel are an injection attempt (RFC 9700 §4.6).
        throw new GatehouseError('bad_request', { logDetail: 'tokens in the callback query' });
      }
      const state = params.get('state');
      if (!state) throw new GatehouseError('invalid_state', { logDetail: 'callback without state' });
      let raw: string | null;
      try {
        raw = await store.take(txKey(state));
      } catch (err) {
        throw new GatehouseError('session_store_unavailable', { cause: err });
      }
      if (!raw) throw new GatehouseError('invalid_state', { logDetail: 'unknown, expired or used state' });
      const tx = JSON.parse(raw) as Transaction;
      if (!isWellFormedId(binding) || bindingHash(binding) !== tx.binding) {
        throw new GatehouseError('invalid_state', { logDetail: 'callback from a browser that did not start this login' });
      }
      const idpError = params.get('error');
      if (idpError) {
        throw new GatehouseError('login_failed', {
          details: { idpError: /^[a-z_]{1,64}$/.test(idpError) ? idpError : 'invalid' },
          logDetail: `identity provider returned error=${idpError.slice(0, 64)}`,
        });
      }
      const configuration = oidc.configuration();
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
        const e = err as { code?: string };
        // Callback checks (iss mismatch, missing code) are the request's fault; token-stage failures are the IdP's.
        if (e.code === 'OAUTH_INVALID_RESPONSE' && !(err as { cause?: unknown }).cause) {
          throw new GatehouseError('bad_request', { cause: err, logDetail: 'callback rejected by openid-client' });
        }
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
      if (isWellFormedId(previousSessionCookie)) {
        // Fixation defence: whatever session the browser had before is destroyed, and a new id is issued.
        const previous = await sessions.load(previousSessionCookie).catch(() => undefined);
        if (previous) await sessions.destroy(previous.key);
      }
      const created = await sessions.create({
        claims,
        ...(typeof idClaims['sid'] === 'string' ? { sid: idClaims['sid'] } : {}),
        tokens: {
          accessToken: tokens.access_token,
          ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
          ...(tokens.id_token ? { idToken: tokens.id_token } : {}),
        },
        ...(accessTokenExpiresAt !== undefined ? { accessTokenExpiresAt } : {}),
      });
      log.info({ session: created.session.key, sub: claims.sub }, 'login completed');
      return { id: created.id, session: created.session, next: tx.next };
    },

    async logout(session) {
      if (!session) return {};
      await sessions.destroy(session.key);
      let configuration: client.Configuration;
      try {
        configuration = oidc.configuration();
      } catch {
        return {};
      }
      if (!configuration.serverMetadata().end_session_endpoint) return {};
      const params: Record<string, string> = { post_logout_redirect_uri: config.postLogoutRedirectUri, client_id: config.clientId };
      if (session.tokens.idToken) params['id_token_hint'] = session.tokens.idToken;
      return { logoutUrl: client.buildEndSessionUrl(configuration, params).href };
    },
  };
}
