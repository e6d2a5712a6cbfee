import { hostname } from 'node:os';
import type { FileConfig } from '../../config/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { KeyValue } from '../../store/store.ts';
import { CircuitBreaker, type BreakerView } from './breaker.ts';
import { RouteGuard } from './guard.ts';
import { healthKey, HealthTarget, type HealthView } from './health.ts';
import { createNotifier, type Notifier } from './notify.ts';

/** What `GET /admin/health` shows: this replica's view of every checked backend and every circuit. */
export interface BackendsSnapshot {
  /** The replica that answered (hostname:pid): each replica probes and counts failures on its own. */
  readonly replica: string;
  readonly at: string;
  readonly backends: ReadonlyArray<HealthView & { readonly mappings: readonly string[] }>;
  readonly breakers: ReadonlyArray<BreakerView & { readonly mappings: readonly string[] }>;
}

/**
 * The backends' state that outlives config snapshots: health checks (per backend origin and check) and circuits
 * (per backend origin). `sync` follows a new configuration: new targets are probed, removed ones stop, unchanged
 * ones keep their state; `guards` compiles a snapshot's per-mapping guards against them.
 */
export interface Backends {
  /** Guards for `routing`'s mappings, indexed by mapping index + 1 (slot 0: defaultBackend, never guarded). */
  compile(routing: FileConfig): readonly RouteGuard[];
  snapshot(): BackendsSnapshot;
  /** Stops every probe and abandons notifications still being retried. */
  close(): Promise<void>;
}

export interface BackendsDeps {
  readonly log: Logger;
  /** Where replicas agree on who sends a notification (SET NX on the transition). */
  readonly store: KeyValue;
  readonly notify: { readonly url: string; readonly secret?: string } | undefined;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Defaults to hostname:pid. */
  readonly replica?: string;
  /** Notification retries (tests shorten them). */
  readonly notifyRetryBaseMs?: number;
  /** The backend and breaker gauges (gatehouse_backend_up, gatehouse_backend_circuit_state), set on each transition. */
  readonly states?: Pick<Metrics, 'backendState' | 'breakerState' | 'backendForgotten'>;
}

const FREE = new RouteGuard({
  maxConcurrent: undefined,
  maxStreams: undefined,
  health: undefined,
  breaker: undefined,
  fallback: undefined,
});

export function createBackends(deps: BackendsDeps): Backends {
  const { log } = deps;
  const now = deps.now ?? Date.now;
  const replica = deps.replica ?? `${hostname()}:${process.pid}`;
  const notifier: Notifier | undefined = deps.notify
    ? createNotifier({
        url: deps.notify.url,
        secret: deps.notify.secret,
        store: deps.store,
        log,
        replica,
        now,
        ...(deps.notifyRetryBaseMs !== undefined ? { retryBaseMs: deps.notifyRetryBaseMs } : {}),
      })
    : undefined;
  const healthDeps = { log, notifier, now, random: deps.random ?? Math.random, states: deps.states };
  const targets = new Map<string, HealthTarget>();
  const breakers = new Map<string, CircuitBreaker>();
  /** Which mappings use each target and breaker, for the admin view (as of the latest compile). */
  let usedBy = new Map<string, string[]>();
  let closed = false;
  const stopping = new Set<Promise<void>>();

  const stop = (t: HealthTarget) => {
    const p = t.stop().finally(() => stopping.delete(p));
    stopping.add(p);
  };

  return {
    compile(routing) {
      const seenTargets = new Set<string>();
      const seenBreakers = new Set<string>();
      const uses = new Map<string, string[]>();
      const use = (key: string, name: string) => uses.set(key, [...(uses.get(key) ?? []), name]);
      const guards: RouteGuard[] = [FREE];
      routing.mappings.forEach((m, i) => {
        const origin = new URL(m.backend).origin;
        const name = `mappings[${i}]`;
        let health: HealthTarget | undefined;
        if (m.healthCheck && !closed) {
          const key = healthKey(origin, m.healthCheck);
          health = targets.get(key);
          // Two mappings naming one check: the first one's settings apply.
          if (!seenTargets.has(key)) {
            if (health) health.configure(m.healthCheck);
            else targets.set(key, (health = new HealthTarget(origin, m.healthCheck, healthDeps)));
            seenTargets.add(key);
          }
          use(`health ${key}`, name);
        }
        let breaker: CircuitBreaker | undefined;
        if (m.circuitBreaker) {
          breaker = breakers.get(origin);
          if (!seenBreakers.has(origin)) {
            if (breaker) breaker.configure(m.circuitBreaker);
            else breakers.set(origin, (breaker = new CircuitBreaker(origin, m.circuitBreaker, log, now, deps.states)));
            seenBreakers.add(origin);
          }
          use(`breaker ${origin}`, name);
        }
        guards.push(new RouteGuard({ maxConcurrent: m.maxConcurrent, maxStreams: m.maxStreams, health, breaker, fallback: m.fallback }));
      });
      // Backends no longer configured: their probes stop and their state goes (a later return starts afresh).
      const dropped = new Set<string>();
      for (const [key, t] of targets) {
        if (seenTargets.has(key)) continue;
        targets.delete(key);
        stop(t);
        dropped.add(t.origin);
      }
      // The gauge is per origin: it goes once no check of that origin is left.
      for (const t of targets.values()) dropped.delete(t.origin);
      for (const origin of dropped) deps.states?.backendForgotten(origin, 'health');
      for (const origin of breakers.keys()) {
        if (seenBreakers.has(origin)) continue;
        breakers.delete(origin);
        deps.states?.backendForgotten(origin, 'breaker');
      }
      usedBy = uses;
      return guards;
    },
    snapshot() {
      return {
        replica,
        at: new Date(now()).toISOString(),
        backends: [...targets.values()].map((t) => ({ ...t.view(), mappings: usedBy.get(`health ${t.key}`) ?? [] })),
        breakers: [...breakers.values()].map((b) => ({ ...b.view(), mappings: usedBy.get(`breaker ${b.backend}`) ?? [] })),
      };
    },
    async close() {
      closed = true;
      for (const t of targets.values()) stop(t);
      targets.clear();
      await Promise.allSettled([...stopping, notifier?.close()]);
    },
  };
}
