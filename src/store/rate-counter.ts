import type { Redis } from 'ioredis';
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';

/** One limit as the store counts it: `requests` per fixed window, plus `burst` more per ten windows. */
export interface RateWindow {
  /** Names the counters in the store: two specs with one id share their buckets. */
  readonly id: string;
  readonly requests: number;
  readonly windowSeconds: number;
  /** Extra requests admitted once a window's `requests` are used, at most `burst` per ten windows (0: none). */
  readonly burst: number;
  /**
   * When the store fails: `local` counts in this process instead (each replica then admits up to the limit on its
   * own), `throw` rejects with the store's error so the caller decides (fail open or closed).
   */
  readonly onStoreError: 'local' | 'throw';
}

/** A hit counted: admitted or not, what is left of the window and when it ends. */
export interface RateCount {
  readonly allowed: boolean;
  /** Requests left in the current window (0 once the limit is reached). */
  readonly remaining: number;
  /** Milliseconds until the window (or, past it, the burst allowance) frees a request. */
  readonly resetMs: number;
}

/** Counts hits per key in windows every replica shares. */
export interface RateCounter {
  /** Counts one hit on `key` against `limit`. Rejects only with a store failure under `onStoreError: 'throw'`. */
  hit(limit: RateWindow, key: string): Promise<RateCount>;
}

/** The burst allowance is counted over this many windows: a burst is rare, or it is the rate. */
const BURST_WINDOWS = 10;

type Make = (points: number, durationSeconds: number, keyPrefix: string, local: RateLimiterAbstract | undefined) => RateLimiterAbstract;

function createCounter(make: Make, local: boolean): RateCounter {
  // One limiter object per distinct limit: built on first use and kept (a handful per config), never per request.
  const limiters = new Map<string, { consume: (key: string) => Promise<RateLimiterRes> }>();
  const limiterFor = (limit: RateWindow) => {
    const name = `${limit.id}:${limit.requests}:${limit.windowSeconds}:${limit.burst}:${limit.onStoreError}`;
    let found = limiters.get(name);
    if (found) return found;
    const keyPrefix = `rl:${limit.id}:${limit.requests}:${limit.windowSeconds}`;
    const insurance = (points: number, seconds: number) =>
      local && limit.onStoreError === 'local' ? new RateLimiterMemory({ points, duration: seconds, keyPrefix: '' }) : undefined;
    const main = make(limit.requests, limit.windowSeconds, keyPrefix, insurance(limit.requests, limit.windowSeconds));
    if (limit.burst > 0) {
      const burstSeconds = limit.windowSeconds * BURST_WINDOWS;
      const extra = make(limit.burst, burstSeconds, `${keyPrefix}:b${limit.burst}`, insurance(limit.burst, burstSeconds));
      const bursty = new BurstyRateLimiter(main, extra);
      found = { consume: (key) => bursty.consume(key) };
    } else {
      found = { consume: (key) => main.consume(key) };
    }
    limiters.set(name, found);
    return found;
  };
  return {
    hit(limit, key) {
      return limiterFor(limit)
        .consume(key)
        .then(
          (res) => ({ allowed: true, remaining: res.remainingPoints, resetMs: res.msBeforeNext }),
          (rej: unknown) => {
            // The library rejects with a RateLimiterRes when the limit is reached, and with the store's error otherwise.
            if (rej instanceof RateLimiterRes) return { allowed: false, remaining: 0, resetMs: Math.max(rej.msBeforeNext, 1) };
            throw rej;
          },
        );
    },
  };
}

/**
 * Counters in Redis (rate-limiter-flexible's atomic INCR + EXPIRE script), so every replica adds to one count:
 * N replicas together admit at most `requests` per window. A key over its limit is then refused from this
 * process's memory until its window ends (inMemoryBlockOnConsumed): a client hammering past its limit costs no
 * Redis round trip, and nothing is admitted that the shared count would refuse.
 */
export function createRedisRateCounter(client: Redis): RateCounter {
  return createCounter(
    (points, duration, keyPrefix, insuranceLimiter) =>
      new RateLimiterRedis({
        storeClient: client,
        points,
        duration,
        keyPrefix,
        inMemoryBlockOnConsumed: points,
        // Fail at once while disconnected (the client has no offline queue either): no request waits on a dead Redis.
        rejectIfRedisNotReady: true,
        ...(insuranceLimiter ? { insuranceLimiter } : {}),
      }),
    true,
  );
}

/** Counters in this process: the memory store's (one process is the whole deployment there). */
export function createMemoryRateCounter(): RateCounter {
  return createCounter((points, duration, keyPrefix) => new RateLimiterMemory({ points, duration, keyPrefix }), false);
}
