import type { HealthCheckConfig } from '../../config/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import {
  createUpstreamPool,
  type UpstreamControl,
  type UpstreamError,
  type UpstreamHandler,
  type UpstreamPool,
} from '../upstream/client.ts';
import { NO_BODY } from '../upstream/request-head.ts';
import type { ResponseHead } from '../upstream/response-head.ts';
import type { Notifier } from './notify.ts';

export type HealthState = 'unknown' | 'up' | 'down';

/** One probed backend as the admin view shows it. Times are ISO strings, absent until they happen. */
export interface HealthView {
  readonly backend: string;
  /** `GET /healthz`: what is probed on the backend's origin. */
  readonly check: string;
  readonly state: HealthState;
  readonly lastCheck: string | undefined;
  readonly lastUp: string | undefined;
  /** When the current outage began (absent while up or unknown). */
  readonly downSince: string | undefined;
  /** Time to the response head of the latest probe (or to its failure). */
  readonly latencyMs: number | undefined;
  readonly consecutiveFailures: number;
  /** Why the latest failed probe failed: `status 503`, `UPSTREAM_CONNECT`, `UPSTREAM_HEADERS_TIMEOUT`. */
  readonly lastError: string | undefined;
}

/** The identity of a probe target: two mappings with the same backend origin and check share one target and its state. */
export function healthKey(origin: string, check: HealthCheckConfig): string {
  return `${check.method} ${origin}${check.path}`;
}

/** healthyStatuses → a predicate, built once per target. */
function statusMatcher(list: ReadonlyArray<string | number>): (status: number) => boolean {
  const exact = new Set<number>();
  const classes = new Set<number>();
  for (const s of list) {
    if (typeof s === 'number') exact.add(s);
    else classes.add(Number(s[0]));
  }
  return (status) => exact.has(status) || classes.has(Math.floor(status / 100));
}

const MAX_FIRST_DELAY_MS = 5000;

export interface HealthDeps {
  readonly log: Logger;
  readonly notifier: Notifier | undefined;
  readonly now: () => number;
  /** [0, 1): spreads probes (injected so a test can pin it). */
  readonly random: () => number;
  /** The up/down gauge, set on each transition. */
  readonly states?: Pick<Metrics, 'backendState'> | undefined;
}

/**
 * One backend's active health check: a probe every `intervalSeconds` (±10%, so targets that start together drift
 * apart), each on a new connection through the upstream client (TLS verified as for traffic), judged by the status
 * of its response head. `unhealthyAfter` consecutive failures mark it down, `healthyAfter` consecutive successes
 * bring it back; the first success marks an unknown backend up at once.
 */
export class HealthTarget {
  readonly key: string;
  readonly origin: string;
  state: HealthState = 'unknown';
  private config: HealthCheckConfig;
  private healthy: (status: number) => boolean;
  private readonly pool: UpstreamPool;
  private readonly deps: HealthDeps;
  private lastCheck = 0;
  private lastUp = 0;
  private downSince = 0;
  private latencyMs: number | undefined;
  private failures = 0;
  private successes = 0;
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private notifyTimer: NodeJS.Timeout | undefined;
  private control: UpstreamControl | undefined;
  private stopped = false;

  constructor(origin: string, config: HealthCheckConfig, deps: HealthDeps) {
    this.key = healthKey(origin, config);
    this.origin = origin;
    this.config = config;
    this.healthy = statusMatcher(config.healthyStatuses);
    this.deps = deps;
    // No idle connection kept: each probe tests that a new connection can be made, as a client's request may need to.
    this.pool = createUpstreamPool(origin, { maxIdle: 0, connectTimeoutMs: config.timeoutMs });
    this.schedule(deps.random() * Math.min(config.intervalSeconds * 1000, MAX_FIRST_DELAY_MS));
  }

  /** A reload kept this target: new thresholds and interval apply from the next probe; the state carries over. */
  configure(config: HealthCheckConfig): void {
    this.config = config;
    this.healthy = statusMatcher(config.healthyStatuses);
  }

  /** Seconds until the next probe could change the verdict, for Retry-After. */
  retryAfterSeconds(): number {
    return this.config.intervalSeconds;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.probe(), delayMs);
    this.timer.unref();
  }

  private probe(): void {
    const started = this.deps.now();
    const { method, path, timeoutMs } = this.config;
    let settled = false;
    const settle = (ok: boolean, error: string | undefined) => {
      if (settled) return;
      settled = true;
      this.control = undefined;
      if (this.stopped) return;
      this.record(ok, this.deps.now() - started, error);
      this.schedule(this.config.intervalSeconds * 1000 * (0.9 + 0.2 * this.deps.random()));
    };
    const healthy = this.healthy;
    const handler: UpstreamHandler = {
      onResponseStart: (head: ResponseHead) => {
        // The head decides; the body is not read (the connection is closed, never reused). Taken before settle(),
        // which forgets it.
        const control = this.control;
        settle(healthy(head.status), healthy(head.status) ? undefined : `status ${head.status}`);
        control?.abort();
      },
      onResponseData: () => true,
      onResponseEnd: () => undefined,
      onResponseError: (err: UpstreamError) => settle(false, err.code),
    };
    this.control = this.pool.request(
      { method, path, headers: ['user-agent', 'gatehouse-health-check'], body: NO_BODY, timeoutMs },
      handler,
    );
  }

  private record(ok: boolean, latencyMs: number, error: string | undefined): void {
    const now = this.deps.now();
    this.lastCheck = now;
    this.latencyMs = latencyMs;
    if (ok) {
      this.lastUp = now;
      this.failures = 0;
      this.successes++;
      if (this.state === 'unknown' || (this.state === 'down' && this.successes >= this.config.healthyAfter)) this.up(now);
    } else {
      this.lastError = error;
      this.successes = 0;
      this.failures++;
      if (this.state !== 'down' && this.failures >= this.config.unhealthyAfter) this.down(now, error);
    }
  }

  private down(now: number, error: string | undefined): void {
    this.state = 'down';
    this.downSince = now;
    this.deps.log.warn({ backend: this.origin, check: this.key, failures: this.failures, detail: error }, 'backend down');
    this.deps.states?.backendState(this.origin, 'down');
    const { notifier } = this.deps;
    if (!notifier) return;
    const since = now;
    this.notifyTimer = setTimeout(() => {
      if (this.state === 'down' && this.downSince === since) notifier.down({ check: this.key, backend: this.origin, downSince: since });
    }, this.config.notifyAfterSeconds * 1000);
    this.notifyTimer.unref();
  }

  private up(now: number): void {
    const was = this.state;
    const since = this.downSince;
    this.state = 'up';
    this.downSince = 0;
    clearTimeout(this.notifyTimer);
    this.deps.states?.backendState(this.origin, 'up');
    if (was !== 'down') return;
    this.deps.log.info({ backend: this.origin, check: this.key, downtimeMs: now - since }, 'backend up');
    this.deps.notifier?.recovered({ check: this.key, backend: this.origin, downSince: since, upAt: now });
  }

  view(): HealthView {
    const iso = (t: number) => (t ? new Date(t).toISOString() : undefined);
    return {
      backend: this.origin,
      check: `${this.config.method} ${this.config.path}`,
      state: this.state,
      lastCheck: iso(this.lastCheck),
      lastUp: iso(this.lastUp),
      downSince: this.state === 'down' ? iso(this.downSince) : undefined,
      latencyMs: this.latencyMs,
      consecutiveFailures: this.failures,
      lastError: this.state === 'up' ? undefined : this.lastError,
    };
  }

  /** No probe after this; the one in flight is abandoned. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.notifyTimer);
    this.control?.abort();
    return this.pool.close();
  }
}
