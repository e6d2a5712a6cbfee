import { GatehouseError } from '../../errors.ts';
import { PROBE, REFUSED, type CircuitBreaker } from './breaker.ts';
import type { HealthTarget } from './health.ts';

/** Where `RouteGuard.enter` sends a request: plain numbers, so the check allocates nothing. */
export const PRIMARY = 0;
/** To the backend, as the one request a half-open circuit lets through. */
export const PRIMARY_PROBE = 1;
/** To the mapping's fallback: the backend is down or its circuit open. */
export const FALLBACK = 2;

/**
 * Forward-time protection of one mapping (admission stage 9): its concurrency and stream limits (per replica), the
 * health of its backend and its backend's circuit. Built with each config snapshot; the health target and the
 * breaker it points at outlive snapshots, the counts belong to it (a request releases the guard it entered).
 */
export class RouteGuard {
  /** Nothing to check: no limit, no health check, no breaker (the adapters skip the guard entirely). */
  readonly free: boolean;
  active = 0;
  streams = 0;
  readonly maxConcurrent: number;
  readonly maxStreams: number;
  readonly health: HealthTarget | undefined;
  readonly breaker: CircuitBreaker | undefined;
  readonly fallbackOrigin: string | undefined;
  /** The fallback URL's path without a trailing slash, prepended to the forwarded path. */
  readonly fallbackBase: string;

  constructor(options: {
    maxConcurrent: number | undefined;
    maxStreams: number | undefined;
    health: HealthTarget | undefined;
    breaker: CircuitBreaker | undefined;
    fallback: string | undefined;
  }) {
    this.maxConcurrent = options.maxConcurrent ?? Number.POSITIVE_INFINITY;
    this.maxStreams = options.maxStreams ?? Number.POSITIVE_INFINITY;
    this.health = options.health;
    this.breaker = options.breaker;
    const fallback = options.fallback === undefined ? undefined : new URL(options.fallback);
    this.fallbackOrigin = fallback?.origin;
    this.fallbackBase = fallback ? fallback.pathname.replace(/\/+$/, '') : '';
    this.free =
      options.maxConcurrent === undefined && options.maxStreams === undefined && this.health === undefined && this.breaker === undefined;
  }

  /** An HTTP request about to be forwarded: PRIMARY, PRIMARY_PROBE or FALLBACK, or a 503 thrown at once. */
  enter(): number {
    // Refused before the circuit is asked: a probe handed out and then refused would hold the circuit half-open.
    if (this.active >= this.maxConcurrent) throw busy('maxConcurrent');
    const via = this.route(true);
    this.active++;
    return via;
  }

  /**
   * Releases what `enter` took, once per request whatever way it ended. `status`: what the client got (499 when it
   * went away); `neutral`: Gatehouse refused or failed on its own, which says nothing about the backend.
   */
  leave(via: number, status: number, neutral: boolean, stream: boolean): void {
    if (stream) this.streams--;
    else this.active--;
    if (via === FALLBACK || !this.breaker) return;
    const ok = neutral || status === 499 || status === 0 ? undefined : status < 500;
    this.breaker.leave(via === PRIMARY_PROBE, ok);
  }

  /** A response turned out to be an event stream: it leaves the concurrency count for the streams count, if there is room. */
  toStream(): boolean {
    if (this.streams >= this.maxStreams) return false;
    this.active--;
    this.streams++;
    return true;
  }

  /** A WebSocket upgrade: counted as a stream until its socket closes (`leaveStream`). Never a circuit's probe. */
  enterStream(): number {
    if (this.streams >= this.maxStreams) throw busy('maxStreams');
    const via = this.route(false);
    this.streams++;
    return via;
  }

  leaveStream(): void {
    this.streams--;
  }

  private route(mayProbe: boolean): number {
    let via = PRIMARY;
    if (this.health?.state === 'down') via = FALLBACK;
    else if (this.breaker) {
      if (!mayProbe) via = this.breaker.state === 'closed' ? PRIMARY : FALLBACK;
      else {
        const b = this.breaker.enter();
        via = b === REFUSED ? FALLBACK : b === PROBE ? PRIMARY_PROBE : PRIMARY;
      }
    }
    if (via === FALLBACK && this.fallbackOrigin === undefined) throw this.unavailable();
    return via;
  }

  private unavailable(): GatehouseError {
    const down = this.health?.state === 'down';
    const seconds = down ? (this.health as HealthTarget).retryAfterSeconds() : (this.breaker as CircuitBreaker).retryAfterSeconds();
    return new GatehouseError('backend_unavailable', {
      headers: ['Retry-After', String(seconds)],
      logDetail: down ? 'backend marked down by its health check' : 'circuit open',
    });
  }
}

/**
 * A guard's own refusal (`too_busy`, `backend_unavailable`): deliberate, like a 429, and its cause is logged once
 * when it begins (`backend down`, `circuit opened`), so the adapters write no error line per refused request.
 */
export function isGuardRefusal(code: string): boolean {
  return code === 'too_busy' || code === 'backend_unavailable';
}

function busy(limit: string): GatehouseError {
  return new GatehouseError('too_busy', { headers: ['Retry-After', '1'], logDetail: `${limit} reached` });
}
