import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { SessionManager } from '../session/sessions.ts';
import type { KeyValue } from '../store/store.ts';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const MAX_TOKEN_AGE_SECONDS = 600;
const CLOCK_TOLERANCE_SECONDS = 60;
// A jti is remembered for as long as its token could still verify (iat may be up to the tolerance ahead, and the token
// is accepted until iat + max age + tolerance): a record expiring sooner lets a captured token be replayed against
// the sessions opened since.
const JTI_TTL_MS = (MAX_TOKEN_AGE_SECONDS + 2 * CLOCK_TOLERANCE_SECONDS) * 1000;

const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * OpenID Connect Back-Channel Logout 1.0 §2.6: verify the logout token and destroy the sessions it
 * names, by `sid` (the IdP session) or, without one, every session of `sub`.
 * @see https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation
 */
export function createBackchannelLogout(deps: {
  keys: () => JWTVerifyGetKey;
  issuer: string;
  clientId: string;
  algorithm: string;
  sessions: SessionManager;
  store: KeyValue;
  log: Logger;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const invalid = (detail: string, cause?: unknown) => new GatehouseError('invalid_logout_token', { logDetail: detail, cause });

  return async function handleLogoutToken(token: unknown): Promise<number> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 16_384) throw invalid('missing logout_token');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, deps.keys(), {
        issuer: deps.issuer,
        audience: deps.clientId,
        algorithms: [deps.algorithm],
        requiredClaims: ['iat', 'jti', 'events'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        maxTokenAge: MAX_TOKEN_AGE_SECONDS,
        currentDate: new Date(now()),
      }));
    } catch (err) {
      if (err instanceof GatehouseError) throw err;
      throw invalid(`logout token rejected: ${(err as { code?: string }).code ?? 'invalid'}`, err);
    }
    const events = payload['events'];
    // §2.4: the member's value is a JSON object (null and arrays are not).
    if (!isJsonObject(events) || !isJsonObject(events[EVENT])) {
      throw invalid('events claim lacks the back-channel logout event');
    }
    if ('nonce' in payload) throw invalid('logout token carries a nonce');
    // A sid of the wrong type must not fall back to "every session of sub".
    if (('sid' in payload && typeof payload['sid'] !== 'string') || ('sub' in payload && typeof payload['sub'] !== 'string')) {
      throw invalid('sid or sub is not a string');
    }
    const sid = typeof payload['sid'] === 'string' ? payload['sid'] : undefined;
    const sub = typeof payload['sub'] === 'string' ? payload['sub'] : undefined;
    if (!sid && !sub) throw invalid('logout token names neither sid nor sub');
    const jti = String(payload['jti']);
    let first: boolean;
    try {
      first = await deps.store.setIfAbsent(`bcl:${jti}`, '1', JTI_TTL_MS);
    } catch (err) {
      throw new GatehouseError('session_store_unavailable', { cause: err });
    }
    if (!first) throw invalid('logout token replayed (jti seen before)');
    const destroyed = sid ? await deps.sessions.destroyBySid(sid, sub) : await deps.sessions.destroyUser(sub as string);
    deps.log.info({ sid, sub, destroyed }, 'back-channel logout');
    return destroyed;
  };
}
