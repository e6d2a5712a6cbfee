import { GatehouseError } from '../errors.ts';
import type { Blocklist } from '../revocation/blocklist.ts';
import type { Session, SessionManager, SessionSecret } from '../session/sessions.ts';
import type { BearerVerifier } from './bearer.ts';
import type { TokenRefresher } from './refresh.ts';

/** Who is calling: what the backend is told and which token it receives. */
export interface Principal {
  readonly kind: 'session' | 'bearer';
  readonly claims: Readonly<Record<string, unknown>>;
  readonly accessToken: string;
  /** The session's store key (Session.storeKey, never the secret), for WebSocket bookkeeping and logs. */
  readonly sessionKey?: string;
  /** When this identity stops being valid (session absolute end, or token exp), in ms. */
  readonly expiresAt: number;
  /** jti of the relayed access token, when it has one (revoking it ends WebSockets opened with it). */
  readonly tokenJti?: string;
  /** When the identity was established (session creation, or the token's iat), in ms: user revocations cut before it. */
  readonly issuedAt: number;
}

export interface IdentityResolver {
  /**
   * The caller's identity from the session cookie (checked against the blocklist, refreshed when due)
   * or, without a session, from a bearer JWT. `required`: a bad bearer token is a 401; `optional`:
   * an unverifiable one is left to the backend.
   */
  resolve(
    secret: SessionSecret | undefined,
    authorization: string | undefined,
    policy: 'required' | 'optional',
  ): Promise<Principal | undefined>;
  /**
   * The hot path's shortcut: the same answer as resolve() when everything it needs is already in this
   * process's caches (session cached, blocklist answers cached and clear, token not due for refresh),
   * or when there is no credential at all. null: ask resolve().
   */
  resolveCached(secret: SessionSecret | undefined, authorization: string | undefined): Principal | undefined | null;
}

export function createIdentityResolver(deps: {
  sessions: SessionManager;
  refresher: TokenRefresher;
  blocklist: Blocklist;
  bearer: BearerVerifier | undefined;
}): IdentityResolver {
  const { sessions, refresher, blocklist, bearer } = deps;
  // One Principal per session object: a cached session answers every request with the same object, which
  // spares an allocation per request and lets the proxy remember the headers it built for it.
  const principals = new WeakMap<Session, Principal>();
  const toPrincipal = (session: Session): Principal => {
    const known = principals.get(session);
    if (known) return known;
    const principal: Principal = {
      kind: 'session',
      claims: session.claims,
      accessToken: session.tokens.accessToken,
      sessionKey: session.storeKey,
      expiresAt: session.expiresAt,
      issuedAt: session.createdAt,
      ...(session.accessTokenJti ? { tokenJti: session.accessTokenJti } : {}),
    };
    principals.set(session, principal);
    return principal;
  };

  return {
    resolveCached(secret, authorization) {
      if (secret === undefined) return authorization === undefined ? undefined : null;
      const session = sessions.peek(secret);
      if (!session || refresher.isDue(session)) return null;
      if (blocklist.cached('s', session.storeKey) !== 0) return null;
      const notBefore = blocklist.cached('u', session.sub);
      if (notBefore === undefined || (notBefore > 0 && session.createdAt < notBefore)) return null;
      if (session.accessTokenJti !== undefined && blocklist.cached('j', session.accessTokenJti) !== 0) return null;
      sessions.touch(session);
      return toPrincipal(session);
    },

    async resolve(secret, authorization, policy) {
      let session = secret !== undefined ? await sessions.load(secret) : undefined;
      if (session) {
        const notBefore = await blocklist.userNotBefore(session.sub);
        if ((await blocklist.isSessionRevoked(session.storeKey)) || (notBefore > 0 && session.createdAt < notBefore)) {
          await sessions.destroy(session.storeKey);
          session = undefined;
        }
      }
      if (session && secret !== undefined) {
        const jti = session.accessTokenJti;
        const revokedJti = jti !== undefined && (await blocklist.isJtiRevoked(jti)) ? jti : undefined;
        session = await refresher.ensureFresh(secret, session, revokedJti);
        sessions.touch(session);
        return toPrincipal(session);
      }
      if (bearer && authorization !== undefined && /^bearer /i.test(authorization)) {
        try {
          const p = await bearer.verify(authorization.slice(7).trim());
          const { jti, iat } = p.claims;
          return {
            kind: 'bearer',
            claims: p.claims,
            accessToken: p.token,
            expiresAt: p.expiresAt,
            issuedAt: typeof iat === 'number' ? iat * 1000 : 0,
            ...(typeof jti === 'string' ? { tokenJti: jti } : {}),
          };
        } catch (err) {
          if (policy === 'required' || !(err instanceof GatehouseError) || err.code !== 'unauthorized') throw err;
        }
      }
      return undefined;
    },
  };
}
