import type { IdpRefreshHealth } from '../auth/refresh.ts';
import type { Store } from '../store/store.ts';

export interface ReadinessReport {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, 'ok' | 'fail' | 'degraded'>>;
  /** Why a check is `degraded`, when one is. */
  readonly details?: {
    readonly idp: { readonly refreshFailures: number; readonly lastFailureAt?: string; readonly retryAt?: string };
  };
  /** Why the replica is not ready whatever its checks say (it is shutting down). */
  readonly reason?: string;
}

export interface Readiness {
  check(): Promise<ReadinessReport>;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}

/**
 * Ready means: the session store answers, and the IdP metadata is loaded (logins and refreshes can work), and
 * the process is not shutting down: from SIGTERM on, /readyz answers 503 at once so the load balancer stops
 * sending new connections while Gatehouse still serves them (SHUTDOWN_DELAY_SECONDS).
 * Failing refreshes make the IdP check `degraded`, never `fail`: every replica sees the same IdP, so taking them
 * out of the load balancer would turn sessions that still hold a valid access token into an outage.
 */
export function createReadiness(deps: {
  store: Pick<Store, 'ping'>;
  idpReady: () => boolean;
  idpRefresh?: () => IdpRefreshHealth;
  shuttingDown?: () => boolean;
  timeoutMs?: number;
}): Readiness {
  return {
    async check() {
      if (deps.shuttingDown?.()) return { ok: false, checks: { shutdown: 'fail' }, reason: 'shutting down' };
      const storeOk = await withTimeout(deps.store.ping(), deps.timeoutMs ?? 1000).then(
        () => true,
        () => false,
      );
      const refresh = deps.idpRefresh?.();
      const idpReady = deps.idpReady();
      const degraded = idpReady && refresh?.state === 'degraded';
      const checks = { store: storeOk ? 'ok' : 'fail', idp: idpReady ? (degraded ? 'degraded' : 'ok') : 'fail' } as const;
      if (!degraded || !refresh) return { ok: storeOk && idpReady, checks };
      const idp = {
        refreshFailures: refresh.consecutiveFailures,
        ...(refresh.lastFailureAt !== undefined ? { lastFailureAt: new Date(refresh.lastFailureAt).toISOString() } : {}),
        ...(refresh.retryAt !== undefined ? { retryAt: new Date(refresh.retryAt).toISOString() } : {}),
      };
      return { ok: storeOk && idpReady, checks, details: { idp } };
    },
  };
}
