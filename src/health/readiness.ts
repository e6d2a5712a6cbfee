import type { Store } from '../store/store.ts';

export interface ReadinessReport {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, 'ok' | 'fail'>>;
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
 */
export function createReadiness(deps: {
  store: Pick<Store, 'ping'>;
  idpReady: () => boolean;
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
      const checks = { store: storeOk ? 'ok' : 'fail', idp: deps.idpReady() ? 'ok' : 'fail' } as const;
      return { ok: storeOk && checks.idp === 'ok', checks };
    },
  };
}
