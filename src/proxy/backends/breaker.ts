import type { CircuitBreakerConfig } from '../../config/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What `CircuitBreaker.enter` answers: plain numbers, so the check on the hot path allocates nothing. */
export const PASS = 0;
/** This request is the one probe a half-open circuit lets through: its outcome closes or reopens the circuit. */
export const PROBE = 1;
export const REFUSED = 2;

export interface BreakerView {
  readonly backend: string;
  readonly state: BreakerState;
  readonly consecutiveFailures: number;
  /** ISO time the circuit last opened. */
  readonly openedAt: string | undefined;
  /** While open: when the next probe may go through. */
  readonly retryAt: string | undefined;
}

/**
 * One backend origin's circuit: closed → open after `failures` consecutive failures (each within `windowSeconds` of
 * the previous one) → half-open after `cooldownSeconds`, when exactly one request goes through and every other is
 * refused until it ends → closed on its success, open again on its failure. Counts live in this process only (each
 * replica judges the backend from its own traffic, as nginx's max_fails does).
 */
export class CircuitBreaker {
  readonly backend: string;
  state: BreakerState = 'closed';
  failures = 0;
  private lastFailureAt = 0;
  private openedAt = 0;
  private probing = false;
  private options: CircuitBreakerConfig;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly states: Pick<Metrics, 'breakerState'> | undefined;

  constructor(backend: string, options: CircuitBreakerConfig, log: Logger, now: () => number, states?: Pick<Metrics, 'breakerState'>) {
    this.backend = backend;
    this.options = options;
    this.log = log;
    this.now = now;
    this.states = states;
    states?.breakerState(backend, 'closed');
  }

  /** A reload may change the thresholds; the state (and an open circuit's cool-down) carries over. */
  configure(options: CircuitBreakerConfig): void {
    this.options = options;
  }

  enter(): number {
    if (this.state === 'closed') return PASS;
    if (this.probing) return REFUSED;
    if (this.state === 'open') {
      if (this.now() - this.openedAt < this.options.cooldownSeconds * 1000) return REFUSED;
      this.change('half-open');
    }
    this.probing = true;
    return PROBE;
  }

  /** Seconds until a refused request is worth retrying (Retry-After), at least 1. */
  retryAfterSeconds(): number {
    if (this.state !== 'open') return 1;
    return Math.max(1, Math.ceil((this.openedAt + this.options.cooldownSeconds * 1000 - this.now()) / 1000));
  }

  /** `ok`: true success, false failure, undefined neither (the client went away, Gatehouse's own refusal). */
  leave(probe: boolean, ok: boolean | undefined): void {
    if (probe) {
      this.probing = false;
      // A probe that proved nothing leaves the circuit half-open: the next request probes instead.
      if (ok === undefined) return;
      if (ok) {
        this.failures = 0;
        this.change('closed');
      } else {
        this.open();
      }
      return;
    }
    if (ok === undefined || this.state !== 'closed') return;
    if (ok) {
      this.failures = 0;
      return;
    }
    const now = this.now();
    this.failures = now - this.lastFailureAt > this.options.windowSeconds * 1000 ? 1 : this.failures + 1;
    this.lastFailureAt = now;
    if (this.failures >= this.options.failures) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.change('open');
  }

  private change(to: BreakerState): void {
    if (this.state === to) return;
    const from = this.state;
    this.state = to;
    this.states?.breakerState(this.backend, to);
    // Once per change, never per refused request.
    const line = { backend: this.backend, from, to, failures: this.failures };
    if (to === 'open') this.log.warn({ ...line, cooldownSeconds: this.options.cooldownSeconds }, 'circuit opened');
    else this.log.info(line, to === 'closed' ? 'circuit closed' : 'circuit half-open');
  }

  view(): BreakerView {
    const open = this.state === 'open';
    return {
      backend: this.backend,
      state: this.state,
      consecutiveFailures: this.failures,
      openedAt: this.openedAt ? new Date(this.openedAt).toISOString() : undefined,
      retryAt: open ? new Date(this.openedAt + this.options.cooldownSeconds * 1000).toISOString() : undefined,
    };
  }
}
