import type * as client from 'openid-client';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Session, SessionManager, SessionSecret } from '../session/sessions.ts';
import type { Bus, LockHandle, Locks } from '../store/store.ts';
import { checkRefreshedIdToken, classifyIdpError, type OidcClient } from './oidc.ts';
import { accessTokenExpiry, peekJwtClaims } from './tokens.ts';

type Outcome = 'ok' | 'expired' | 'unavailable';

/** Waits between attempts to store refreshed tokens while the session store fails (about 7.5 s in all). */
const STORE_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000];

/** How token refresh is faring at the IdP, as this process saw it (for /readyz and the logs). */
export interface IdpRefreshHealth {
  /** `degraded` from the first failed refresh until the next one succeeds. */
  readonly state: 'ok' | 'degraded';
  readonly consecutiveFailures: number;
  /** When the last refresh failed (ms, Gatehouse's clock). */
  readonly lastFailureAt?: number;
  /** While this process holds back every refresh: when the next one may be tried. */
  readonly retryAt?: number;
}

export interface TokenRefresher {
  start(): Promise<void>;
  /**
   * A session whose access token can be forwarded. A refresh starts when the token expires within the skew (or
   * when `revokedJti` names it), once per session across all replicas; a still-valid token is returned at once
   * while the refresh runs in the background; an expired one waits for the refresh until the request deadline,
   * and fails with idp_unavailable at once while refreshes are backing off.
   */
  ensureFresh(secret: SessionSecret, session: Session, revokedJti?: string): Promise<Session>;
  /** Whether ensureFresh would refresh this session (its token expires within the skew). */
  isDue(session: Session): boolean;
  health(): IdpRefreshHealth;
  /** Resolves once no refresh is running in this process (for shutdown: a refresh cut short may have rotated the token). */
  settled(): Promise<void>;
}

const CHANNEL = 'refresh-done';

/**
 * Single-flight refresh on two levels: an in-process promise per session, and a Redis lock
 * (SET NX PX, renewed while the IdP call runs, released by compare-and-delete) with a re-read of the
 * session after acquiring. Waiters are woken by a pub/sub message carrying the winner's outcome, so a
 * refresh token is never sent twice (with rotation, reuse revokes the whole grant: RFC 9700 §4.14.2).
 *
 * A refresh that was sent is never abandoned: requests stop waiting at `waitTimeoutMs`, but the IdP call runs to
 * its own limit (`refreshCallTimeoutSeconds`) with the lock renewed, and its result is stored when it lands.
 * Transient failures back off per session and, after `processFailureThreshold` in a row, for the whole process
 * (one probe per interval), exponentially with jitter between `backoffBaseMs` and `backoffMaxMs`.
 */
export function createTokenRefresher(deps: {
  oidc: OidcClient;
  sessions: SessionManager;
  store: Locks & Bus;
  log: Logger;
  skewSeconds: number;
  /** How long a request whose token has expired waits for a refresh (its own or another replica's). */
  waitTimeoutMs: number;
  /** The IdP call's own limit: how long a refresh (here or on another replica) may take before it is given up. */
  callLimitMs: number;
  lockTtlMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  processFailureThreshold?: number;
  now?: () => number;
  random?: () => number;
  /** Refreshes and their failures, counted where this replica holds the lock and calls the IdP. */
  metrics?: Pick<Metrics, 'refreshed' | 'refreshFailed'>;
}): TokenRefresher {
  const { oidc, sessions, store, log } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const lockTtlMs = deps.lockTtlMs ?? 5000;
  const backoffBaseMs = deps.backoffBaseMs ?? 1000;
  const backoffMaxMs = deps.backoffMaxMs ?? 30_000;
  const threshold = deps.processFailureThreshold ?? 3;
  if (!(deps.waitTimeoutMs > 0 && deps.callLimitMs >= deps.waitTimeoutMs)) {
    throw new TypeError('createTokenRefresher: callLimitMs must be at least waitTimeoutMs, and both positive');
  }
  if (!(backoffBaseMs > 0 && backoffMaxMs >= backoffBaseMs && threshold >= 1)) {
    throw new TypeError('createTokenRefresher: backoff needs 0 < backoffBaseMs <= backoffMaxMs and processFailureThreshold >= 1');
  }
  const inflight = new Map<string, Promise<Session>>();
  const waiters = new Map<string, Set<(o: Outcome) => void>>();
  const sessionBackoff = new Map<string, { failures: number; until: number }>();
  let processFailures = 0;
  let processRetryAt = 0;
  let lastFailureAt: number | undefined;

  const needsRefresh = (s: Session, revokedJti: string | undefined) =>
    (revokedJti !== undefined && s.accessTokenJti === revokedJti) ||
    (s.accessTokenExpiresAt !== undefined && s.accessTokenExpiresAt - now() <= deps.skewSeconds * 1000);
  const stillValid = (s: Session, revokedJti: string | undefined) =>
    !(revokedJti !== undefined && s.accessTokenJti === revokedJti) &&
    (s.accessTokenExpiresAt === undefined || s.accessTokenExpiresAt > now());

  // Equal jitter: replicas and sessions that failed together do not come back together.
  const backoffMs = (failures: number) => {
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(failures - 1, 30));
    return ceiling / 2 + (random() * ceiling) / 2;
  };

  const sessionFailed = (key: string) => {
    const at = now();
    const failures = (sessionBackoff.get(key)?.failures ?? 0) + 1;
    sessionBackoff.set(key, { failures, until: at + backoffMs(failures) });
    if (sessionBackoff.size > 10_000) {
      for (const [k, b] of sessionBackoff) if (at - b.until > backoffMaxMs) sessionBackoff.delete(k);
    }
  };

  const processFailed = (err: { code: string | undefined; error: string | undefined }) => {
    processFailures++;
    lastFailureAt = now();
    if (processFailures < threshold) return;
    const delay = backoffMs(processFailures - threshold + 1);
    processRetryAt = lastFailureAt + delay;
    log.error(
      { err, consecutiveFailures: processFailures, retryInMs: Math.round(delay) },
      'identity provider refreshes keep failing; this process holds back token refreshes',
    );
  };

  const refreshed = (key: string) => {
    sessionBackoff.delete(key);
    if (processFailures > 0) log.info({ afterFailures: processFailures }, 'identity provider refreshes work again');
    processFailures = 0;
    processRetryAt = 0;
  };

  /** Whether a refresh of `key` may start now; while the process backs off, the first caller after each interval is its one probe. */
  const mayStart = (key: string) => {
    const at = now();
    const session = sessionBackoff.get(key);
    if (session && at < session.until) return false;
    if (processFailures >= threshold) {
      if (at < processRetryAt) return false;
      processRetryAt = at + backoffMs(processFailures - threshold + 1);
    }
    return true;
  };

  const announce = (key: string, outcome: Outcome) =>
    store.publish(CHANNEL, `${key} ${outcome}`).catch((err: unknown) => log.warn({ err }, 'refresh outcome publish failed'));

  const waitForOutcome = (key: string, lockName: string): Promise<Outcome | 'timeout'> =>
    new Promise((resolve) => {
      let set = waiters.get(key);
      if (!set) waiters.set(key, (set = new Set()));
      // The owner's call may run to its limit, and its lock outlives it by at most one TTL.
      const deadline = now() + deps.callLimitMs + lockTtlMs;
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

  /**
   * What a request gets: the refresh's result, or at its deadline the session as it is (if still valid) or
   * idp_unavailable. A result that does not serve this request (a refresh joined from the background that found
   * nothing to do while the token was still valid) goes to `again`.
   */
  const answerBy = (
    pending: Promise<Session>,
    session: Session,
    revokedJti: string | undefined,
    again: ((s: Session) => Promise<Session>) | undefined,
  ): Promise<Session> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (stillValid(session, revokedJti)) resolve(session);
        else reject(new GatehouseError('idp_unavailable', { logDetail: 'the refresh was still running at the request deadline' }));
      }, deps.waitTimeoutMs);
      pending.then(
        (s) => {
          clearTimeout(timer);
          resolve(again && needsRefresh(s, revokedJti) && !stillValid(s, revokedJti) ? again(s) : s);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (err instanceof GatehouseError && err.code === 'idp_unavailable' && stillValid(session, revokedJti)) resolve(session);
          else reject(err as Error);
        },
      );
    });

  async function refreshAsOwner(
    secret: SessionSecret,
    session: Session,
    revokedJti: string | undefined,
    lock: LockHandle,
  ): Promise<Session> {
    const renew = setInterval(
      () => {
        lock.renew().then(
          (owned) => {
            // Another replica may now send the same refresh token: the reuse the lock exists to prevent.
            if (!owned) log.warn({ session: session.storeKey }, 'refresh lock lost while the IdP call was still running');
          },
          () => undefined,
        );
      },
      Math.max(100, Math.floor(lockTtlMs / 3)),
    );
    renew.unref();
    let outcome: Outcome = 'unavailable';
    try {
      const fresh = await sessions.load(secret, { fresh: true });
      if (!fresh) {
        outcome = 'expired';
        deps.metrics?.refreshFailed('session_gone');
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
        deps.metrics?.refreshFailed('no_refresh_token');
        throw new GatehouseError('session_expired', { logDetail: 'access token expired and no refresh token' });
      }
      let result: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
      try {
        result = await oidc.refreshGrant(refreshToken);
        checkRefreshedIdToken(result.claims(), { sub: fresh.sub, idToken: fresh.tokens.idToken });
      } catch (err) {
        const failure = classifyIdpError(err);
        deps.metrics?.refreshFailed(failure.transient ? 'idp_unavailable' : 'refused');
        if (!failure.transient) {
          // Refused once, ended once: the token we sent is spent or dead, so no later request may send it again.
          await sessions.destroy(fresh.storeKey);
          outcome = 'expired';
          log.warn({ session: fresh.storeKey, reason: failure.reason }, 'token refresh refused; session ended');
          throw new GatehouseError('session_expired', { cause: err, logDetail: `refresh refused: ${failure.reason}` });
        }
        sessionFailed(fresh.storeKey);
        processFailed({ code: failure.code, error: failure.error });
        log.warn({ session: fresh.storeKey, reason: failure.reason }, 'token refresh failed; keeping the session for a later retry');
        throw new GatehouseError('idp_unavailable', { cause: err, logDetail: `token refresh failed (${failure.reason})` });
      }
      const at = now();
      const jti = peekJwtClaims(result.access_token)?.jti;
      const tokens = {
        accessToken: result.access_token,
        // RFC 6749 §6: a new refresh token replaces the old one; none returned means the old one stays valid.
        ...((result.refresh_token ?? refreshToken) ? { refreshToken: result.refresh_token ?? refreshToken } : {}),
        ...((result.id_token ?? fresh.tokens.idToken) ? { idToken: result.id_token ?? fresh.tokens.idToken } : {}),
      };
      const expiresAt = accessTokenExpiry(result.expiresIn(), result.access_token, at);
      // The IdP has rotated the refresh token: losing this write to a Redis hiccup would leave the session holding a
      // spent one, which the next refresh would send as reuse. So the write is retried while the lock is renewed.
      let updated: Session | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          updated = await sessions.replaceTokens(secret, fresh, tokens, expiresAt, jti);
          break;
        } catch (err) {
          const delay = STORE_RETRY_DELAYS_MS[attempt];
          if (!(err instanceof GatehouseError) || err.code !== 'session_store_unavailable' || delay === undefined) {
            log.error({ session: fresh.storeKey }, 'refreshed tokens could not be stored; the next refresh sends a spent refresh token');
            deps.metrics?.refreshFailed('store');
            throw err;
          }
          log.warn({ session: fresh.storeKey, retryInMs: delay }, 'refreshed tokens not stored yet (session store); retrying');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
      if (!updated) {
        outcome = 'expired';
        throw new GatehouseError('session_expired', { logDetail: 'session ended during refresh' });
      }
      outcome = 'ok';
      deps.metrics?.refreshed();
      refreshed(fresh.storeKey);
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
    // Another attempt only after the lock went away without a word (its owner died, or the message was lost).
    for (let attempt = 0; attempt < 3; attempt++) {
      let lock: LockHandle | undefined;
      try {
        lock = await store.acquireLock(lockName, lockTtlMs);
      } catch (err) {
        throw new GatehouseError('session_store_unavailable', { cause: err });
      }
      if (lock) return refreshAsOwner(secret, session, revokedJti, lock);
      // Never the same refresh token while another replica's call may still rotate it: wait for that call to settle.
      const outcome = await waitForOutcome(session.storeKey, lockName);
      if (outcome === 'expired') throw new GatehouseError('session_expired', { logDetail: 'refresh on another replica ended the session' });
      const current = await sessions.load(secret, { fresh: true });
      if (!current) throw new GatehouseError('session_expired');
      if (!needsRefresh(current, revokedJti)) return current;
      if (outcome === 'unavailable') {
        sessionFailed(session.storeKey);
        throw new GatehouseError('idp_unavailable', { logDetail: 'refresh failed on another replica' });
      }
      session = current;
    }
    throw new GatehouseError('idp_unavailable', { logDetail: 'refresh did not complete' });
  }

  function ensureFresh(secret: SessionSecret, session: Session, revokedJti: string | undefined, retry: boolean): Promise<Session> {
    if (!needsRefresh(session, revokedJti)) return Promise.resolve(session);
    const key = session.storeKey;
    let pending = inflight.get(key);
    if (!pending) {
      if (!mayStart(key)) {
        if (stillValid(session, revokedJti)) return Promise.resolve(session);
        return Promise.reject(new GatehouseError('idp_unavailable', { logDetail: 'token refresh is backing off after IdP failures' }));
      }
      pending = refresh(secret, session, revokedJti).finally(() => inflight.delete(key));
      // Nobody may be waiting (a still-valid token was served at once): its failure is already logged.
      pending.catch(() => undefined);
      inflight.set(key, pending);
    }
    // Stale-while-revalidate: a token that still works is forwarded now; the refresh lands for later requests.
    if (stillValid(session, revokedJti)) return Promise.resolve(session);
    return answerBy(pending, session, revokedJti, retry ? (s) => ensureFresh(secret, s, revokedJti, false) : undefined);
  }

  return {
    start: () =>
      store.subscribe(CHANNEL, (message) => {
        const [key, outcome] = message.split(' ');
        if (!key) return;
        for (const wake of [...(waiters.get(key) ?? [])]) wake(outcome as Outcome);
      }),
    isDue: (session) => needsRefresh(session, undefined),
    ensureFresh: (secret, session, revokedJti) => ensureFresh(secret, session, revokedJti, true),
    async settled() {
      while (inflight.size > 0) await Promise.allSettled([...inflight.values()]);
    },
    health() {
      if (processFailures === 0) return { state: 'ok', consecutiveFailures: 0 };
      return {
        state: 'degraded',
        consecutiveFailures: processFailures,
        ...(lastFailureAt !== undefined ? { lastFailureAt } : {}),
        ...(processRetryAt > now() ? { retryAt: processRetryAt } : {}),
      };
    },
  };
}
