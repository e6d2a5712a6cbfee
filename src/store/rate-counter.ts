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
  /**
   * Answered in this process without the store: counted here because it failed (`onStoreError: 'local'`), or a
   * key already known to be over its limit until its window ends.
   */
  readonly local: boolean;
}

/** Counts hits per key in windows every replica shares. */
export interface RateCounter {
  /** Counts one hit on `key` against `limit`. Rejects only with a store failure under `onStoreError: 'throw'`. */
  hit(limit: RateWindow, key: string): Promise<RateCount>;
}

/** The burst allowance is counted over this many windows: a burst is rare, or it is the rate. */
const BURST_WINDOWS = 10;

type Make = (points: number, durationSeconds: number, keyPrefix: string) => RateLimiterAbstract;
type Consume = (key: string) => Promise<RateLimiterRes>;

/** `requests` per window, then `burst` per ten windows once those are used (the library's BurstyRateLimiter). */
function limiterOf(make: Make, limit: RateWindow, keyPrefix: string): Consume {
  const main = make(limit.requests, limit.windowSeconds, keyPrefix);
  if (limit.burst <= 0) return (key) => main.consume(key);
  const bursty = new BurstyRateLimiter(main, make(limit.burst, limit.windowSeconds * BURST_WINDOWS, `${keyPrefix}:b${limit.burst}`));
  return (key) => bursty.consume(key);
}

const memory: Make = (points, duration, keyPrefix) => new RateLimiterMemory({ points, duration, keyPrefix });

/** Keys known to be over their limit, at most this many (past it, expired ones go, then all: that only costs round trips). */
const MAX_BLOCKED = 10_000;

function createCounter(make: Make, now: () => number): RateCounter {
  // One limiter per distinct limit: built on first use and kept (a handful per config), never per request.
  const limiters = new Map<string, { name: string; shared: Consume; local: Consume | undefined }>();
  const limitersFor = (limit: RateWindow) => {
    const name = `${limit.id}:${limit.requests}:${limit.windowSeconds}:${limit.burst}:${limit.onStoreError}`;
    let found = limiters.get(name);
    if (found) return found;
    const keyPrefix = `rl:${limit.id}:${limit.requests}:${limit.windowSeconds}`;
    found = {
      name,
      shared: limiterOf(make, limit, keyPrefix),
      // Built here rather than as the library's insuranceLimiter: an answer from it must not read as the store answering.
      local: limit.onStoreError === 'local' && make !== memory ? limiterOf(memory, limit, keyPrefix) : undefined,
    };
    limiters.set(name, found);
    return found;
  };
  const counted = (res: RateLimiterRes, local: boolean): RateCount => ({
    allowed: true,
    remaining: res.remainingPoints,
    resetMs: res.msBeforeNext,
    local,
  });
  // The library rejects with a RateLimiterRes when the limit is reached, and with the store's error otherwise.
  const refused = (rej: unknown, local: boolean): RateCount => {
    if (!(rej instanceof RateLimiterRes)) throw rej;
    return { allowed: false, remaining: 0, resetMs: Math.max(rej.msBeforeNext, 1), local };
  };
  // A key over its limit is refused from here until its window ends: a client hammering past its limit costs no
  // round trip, and nothing is admitted that the shared count would refuse.
  const blocked = new Map<string, number>();
  const block = (id: string, resetMs: number) => {
    if (blocked.size >= MAX_BLOCKED) {
      const t = now();
      for (const [k, until] of blocked) if (until <= t) blocked.delete(k);
      if (blocked.size >= MAX_BLOCKED) blocked.clear();
    }
    blocked.set(id, now() + resetMs);
  };
  return {
    hit(limit, key) {
      const { name, shared, local } = limitersFor(limit);
      const id = `${name}|${key}`;
      const until = blocked.get(id);
      if (until !== undefined) {
        const left = until - now();
        if (left > 0) return Promise.resolve({ allowed: false, remaining: 0, resetMs: left, local: true });
        blocked.delete(id);
      }
      return shared(key).then(
        (res) => counted(res, false),
        (rej: unknown) => {
          if (rej instanceof RateLimiterRes) {
            const count = refused(rej, false);
            block(id, count.resetMs);
            return count;
          }
          if (local === undefined) throw rej;
          return local(key).then(
            (res) => counted(res, true),
            (again: unknown) => refused(again, true),
          );
        },
      );
    },
  };
}

/**
 * Counters in Redis (rate-limiter-flexible's atomic INCR + EXPIRE script), so every replica adds to one count:
 * N replicas together admit at most `requests` per window.
 */
export function createRedisRateCounter(client: Redis, now: () => number = Date.now): RateCounter {
  return createCounter(
    (points, duration, keyPrefix) =>
      new RateLimiterRedis({
        storeClient: client,
        points,
        duration,
        keyPrefix,
        // Fail at once while disconnected (the client has no offline queue either): no request waits on a dead Redis.
        rejectIfRedisNotReady: true,
      }),
    now,
  );
}

/** Counters in this process: the memory store's (one process is the whole deployment there). */
export function createMemoryRateCounter(now: () => number = Date.now): RateCounter {
  return createCounter(memory, now);
}
