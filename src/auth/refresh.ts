import * as client from 'openid-client';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Session, SessionManager, SessionSecret } from '../session/sessions.ts';
import type { Bus, LockHandle, Locks } from '../store/store.ts';
import { checkRefreshedIdToken, classifyIdpError, type OidcClient } from './oidc.ts';
import { accessTokenExpiry, peekJwtClaims } from './tokens.ts';

type Outcome = 'ok' | 'expired' | 'unavailable';

export interface TokenRefresher {
  start(): Promise<void>;
  /**
   * A session whose access token can be forwarded: refreshed when it expires within the skew (or when
   * `revokedJti` names its current token), exactly once per session across all replicas.
   */
  ensureFresh(secret: SessionSecret, session: Session, revokedJti?: string): Promise<Session>;
  /** Whether ensureFresh would refresh this session (its token expires within the skew). */
  isDue(session: Session): boolean;
}

const CHANNEL = 'refresh-done';

/**
 * Single-flight refresh on two levels: an in-process promise per session, and a Redis lock
 * (SET NX PX, renewed while the IdP call runs, released by compare-and-delete) with a re-read of the
 * session after acquiring. Waiters are woken by a pub/sub message carrying the winner's outcome, so a
 * refresh token is never sent twice (with rotation, reuse revokes the whole grant: RFC 9700 §4.14.2).
 */
export function createTokenRefresher(deps: {
  oidc: OidcClient;
  sessions: SessionManager;
  store: Locks & Bus;
  log: Logger;
  skewSeconds: number;
  /** How long waiters wait for another replica's refresh before checking for themselves. */
  waitTimeoutMs: number;
  lockTtlMs?: number;
  now?: () => number;
}): TokenRefresher {
  const { oidc, sessions, store, log } = deps;
  const now = deps.now ?? Date.now;
  const lockTtlMs = deps.lockTtlMs ?? 5000;
  const inflight = new Map<string, Promise<Session>>();
  const waiters = new Map<string, Set<(o: Outcome) => void>>();

  const needsRefresh = (s: Session, revokedJti: string | undefined) =>
    (revokedJti !== undefined && s.accessTokenJti === revokedJti) ||
    (s.accessTokenExpiresAt !== undefined && s.accessTokenExpiresAt - now() <= deps.skewSeconds * 1000);
  const stillValid = (s: Session, revokedJti: string | undefined) =>
    !(revokedJti !== undefined && s.accessTokenJti === revokedJti) &&
    (s.accessTokenExpiresAt === undefined || s.accessTokenExpiresAt > now());

  const announce = (key: string, outcome: Outcome) =>
    store.publish(CHANNEL, `${key} ${outcome}`).catch((err: unknown) => log.warn({ err }, 'refresh outcome publish failed'));

  const waitForOutcome = (key: string, lockName: string): Promise<Outcome | 'timeout'> =>
    new Promise((resolve) => {
      let set = waiters.get(key);
      if (!set) waiters.set(key, (set = new Set()));
      const deadline = now() + deps.waitTimeoutMs;
      const done = (o: Outcome | 'timeout') => {
        clearInterval(check);
        set.delete(wake);
        if (set.size === 0) waiters.delete(key);
        resolve(o);
      };
      const wake = (o: Outcome) => done(o);
      set.add(wake);
      // Not polling for the result: a slow safety net for a lost message or a winner that died holding the lock.
      const check = setInterval(() => {
        if (now() >= deadline) return done('timeout');
        store.lockHeld(lockName).then(
          (held) => {
            if (!held) done('timeout');
          },
          () => undefined,
        );
      }, 1000);
      check.unref();
    });

  async function refreshAsOwner(
    secret: SessionSecret,
    session: Session,
    revokedJti: string | undefined,
    lock: LockHandle,
  ): Promise<Session> {
    const renew = setInterval(
      () => {
        lock.renew().catch(() => undefined);
      },
      Math.max(100, Math.floor(lockTtlMs / 3)),
    );
    renew.unref();
    let outcome: Outcome = 'unavailable';
    try {
      const fresh = await sessions.load(secret, { fresh: true });
      if (!fresh) {
        outcome = 'expired';
        throw new GatehouseError('session_expired', { logDetail: 'session gone before refresh' });
      }
      if (!needsRefresh(fresh, revokedJti)) {
        // Another replica refreshed while we waited for the lock.
        outcome = 'ok';
        return fresh;
      }
      const refreshToken = fresh.tokens.refreshToken;
      if (!refreshToken) {
        if (stillValid(fresh, revokedJti)) return fresh;
        await sessions.destroy(fresh.storeKey);
        outcome = 'expired';
        throw new GatehouseError('session_expired', { logDetail: 'access token expired and no refresh token' });
      }
      let result: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
      try {
        result = await client.refreshTokenGrant(oidc.configuration(), refreshToken);
        checkRefreshedIdToken(result.claims(), { sub: fresh.sub, idToken: fresh.tokens.idToken });
      } catch (err) {
        const failure = classifyIdpError(err);
        if (!failure.transient) {
          // Refused once, ended once: the token we sent is spent or dead, so no later request may send it again.
          await sessions.destroy(fresh.storeKey);
          outcome = 'expired';
          log.warn({ session: fresh.storeKey, reason: failure.reason }, 'token refresh refused; session ended');
          throw new GatehouseError('session_expired', { cause: err, logDetail: `refresh refused: ${failure.reason}` });
        }
        log.warn({ session: fresh.storeKey, reason: failure.reason }, 'token refresh failed; keeping the session for a later retry');
        if (stillValid(fresh, revokedJti)) return fresh;
        throw new GatehouseError('idp_unavailable', {
          cause: err,
          logDetail: `refresh failed (${failure.reason}) and the access token has expired`,
        });
      }
      const at = now();
      const jti = peekJwtClaims(result.access_token)?.jti;
      const updated = await sessions.replaceTokens(
        secret,
        fresh,
        {
          accessToken: result.access_token,
          // RFC 6749 §6: a new refresh token replaces the old one; none returned means the old one stays valid.
          ...((result.refresh_token ?? refreshToken) ? { refreshToken: result.refresh_token ?? refreshToken } : {}),
          ...((result.id_token ?? fresh.tokens.idToken) ? { idToken: result.id_token ?? fresh.tokens.idToken } : {}),
        },
        accessTokenExpiry(result.expiresIn(), result.access_token, at),
        jti,
      );
      if (!updated) {
        outcome = 'expired';
        throw new GatehouseError('session_expired', { logDetail: 'session ended during refresh' });
      }
      outcome = 'ok';
      log.info({ session: fresh.storeKey }, 'access token refreshed');
      return updated;
    } finally {
      clearInterval(renew);
      await lock.release().catch(() => undefined);
      await announce(session.storeKey, outcome);
    }
  }

  async function refresh(secret: SessionSecret, session: Session, revokedJti: string | undefined): Promise<Session> {
    const lockName = `refresh:${session.storeKey}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      let lock: LockHandle | undefined;
      try {
        lock = await store.acquireLock(lockName, lockTtlMs);
      } catch (err) {
        throw new GatehouseError('session_store_unavailable', { cause: err });
      }
      if (lock) return refreshAsOwner(secret, session, revokedJti, lock);
      const outcome = await waitForOutcome(session.storeKey, lockName);
      if (outcome === 'expired') throw new GatehouseError('session_expired', { logDetail: 'refresh on another replica ended the session' });
      const current = await sessions.load(secret, { fresh: true });
      if (!current) throw new GatehouseError('session_expired');
      if (!needsRefresh(current, revokedJti)) return current;
      if (outcome === 'unavailable') {
        if (stillValid(current, revokedJti)) return current;
        throw new GatehouseError('idp_unavailable', { logDetail: 'refresh failed on another replica' });
      }
      session = current;
    }
    if (stillValid(session, revokedJti)) return session;
    throw new GatehouseError('idp_unavailable', { logDetail: 'refresh did not complete' });
  }

  return {
    start: () =>
      store.subscribe(CHANNEL, (message) => {
        const [key, outcome] = message.split(' ');
        if (!key) return;
        for (const wake of [...(waiters.get(key) ?? [])]) wake(outcome as Outcome);
      }),
    isDue: (session) => needsRefresh(session, undefined),
    ensureFresh(secret, session, revokedJti) {
      if (!needsRefresh(session, revokedJti)) return Promise.resolve(session);
      let p = inflight.get(session.storeKey);
      if (!p) {
        p = refresh(secret, session, revokedJti).finally(() => inflight.delete(session.storeKey));
        inflight.set(session.storeKey, p);
      }
      return p;
    },
  };
}
