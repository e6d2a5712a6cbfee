import type { Store } from '../store/store.ts';

export interface ReadinessReport {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, 'ok' | 'fail'>>;
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

/** Ready means: the session store answers, and the IdP metadata is loaded (logins and refreshes can work). */
export function createReadiness(deps: { store: Pick<Store, 'ping'>; idpReady: () => boolean; timeoutMs?: number }): Readiness {
  return {
    async check() {
      const storeOk = await withTimeout(deps.store.ping(), deps.timeoutMs ?? 1000).then(
        () => true,
        () => false,
      );
      const checks = { store: storeOk ? 'ok' : 'fail', idp: deps.idpReady() ? 'ok' : 'fail' } as const;
      return { ok: storeOk && checks.idp === 'ok', checks };
    },
  };
}
