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
  /**
   * Counts one hit on `key` against `limit`: synchronously when this process can answer (a lease it holds, a key
   * known to be over its limit), else through the store. Rejects only with a store failure under `onStoreError: 'throw'`.
   */
  hit(limit: RateWindow, key: string): RateCount | Promise<RateCount>;
}

/** The burst allowance is counted over this many windows: a burst is rare, or it is the rate. */
const BURST_WINDOWS = 10;

/**
 * How many requests one store round trip takes for a key: requests / LEASE_DIVISOR, between 1 and MAX_LEASE. A
 * replica serves a lease from memory; leases come out of the shared count, so replicas together never admit more
 * than `requests` per window. When a lease is down to a quarter, the next is taken ahead, so a steady caller does
 * not wait for the store. The price is the other way: requests one replica leased and did not use are lost to the
 * others until the window ends, at most a lease and a quarter, 5 % of the limit per other replica.
 * MAX_LEASE: a caller with 32 requests in flight (the bench's) uses up a lease of 32 before the store answers the
 * next; 128 keeps one round trip ahead of it (docs/performance.md, "Rate limits in Redis").
 */
const LEASE_DIVISOR = 25;
const MAX_LEASE = 128;

type Make = (points: number, durationSeconds: number, keyPrefix: string) => RateLimiterAbstract;
type Consume = (key: string, points: number) => Promise<RateLimiterRes>;

/** `requests` per window, then `burst` per ten windows once those are used (the library's BurstyRateLimiter). */
function limiterOf(make: Make, limit: RateWindow, keyPrefix: string): Consume {
  const main = make(limit.requests, limit.windowSeconds, keyPrefix);
  if (limit.burst <= 0) return (key, points) => main.consume(key, points);
  const bursty = new BurstyRateLimiter(main, make(limit.burst, limit.windowSeconds * BURST_WINDOWS, `${keyPrefix}:b${limit.burst}`));
  return (key, points) => bursty.consume(key, points);
}

const memory: Make = (points, duration, keyPrefix) => new RateLimiterMemory({ points, duration, keyPrefix });

/** Requests taken from the shared count in one round trip, for the window they were counted in. */
interface Lease {
  /** Not used yet. */
  left: number;
  /** When its window ends (Date.now() time): a leased request is admitted only inside the window that counted it. */
  readonly until: number;
  /** What the store had left when the lease was taken. */
  readonly remaining: number;
  /** The shared count is used up: once `left` is spent, refuse until `until` without asking the store. */
  readonly exhausted: boolean;
}

/** What this process holds of one key. */
interface Held {
  current: Lease;
  /** The lease taken ahead while `current` still had requests: used once `current` is spent or its window is over. */
  next: Lease | undefined;
  /** The lease request under way (one per key at a time): callers with nothing to take wait for it. */
  pending: Promise<void> | undefined;
}

const SPENT: Lease = Object.freeze({ left: 0, until: 0, remaining: 0, exhausted: false });

/**
 * Keys held at once per limit, at most. Past it, expired entries go, then every idle one: that costs round trips,
 * the evicted keys' unused leased requests (lost to every replica until their window ends) and the memory of keys
 * over their limit (refused again by the store's answer, not from memory).
 */
const MAX_HELD = 10_000;

interface Limiters {
  readonly requests: number;
  readonly shared: Consume;
  /** Requests per store round trip (1 with a burst: the burst limiter's answer has no count to split a lease by). */
  readonly lease: number;
  /** The next lease is taken once `current` has this many left (0: never ahead; each lease is taken when needed). */
  readonly ahead: number;
  readonly local: Consume | undefined;
  /** This process's leases, by key. */
  readonly held: Map<string, Held>;
}

function createCounter(make: Make, now: () => number, leasing: boolean): RateCounter {
  // One set of limiters per distinct limit (its id and numbers, so two specs with one id share buckets): built on
  // first use and kept, never per request. The compiled limit object finds it without building its name.
  const limiters = new Map<string, Limiters>();
  const byLimit = new WeakMap<RateWindow, Limiters>();
  const build = (limit: RateWindow): Limiters => {
    const name = `${limit.id}:${limit.requests}:${limit.windowSeconds}:${limit.burst}:${limit.onStoreError}`;
    let found = limiters.get(name);
    if (!found) {
      const keyPrefix = `rl:${limit.id}:${limit.requests}:${limit.windowSeconds}`;
      const lease = leasing && limit.burst === 0 ? Math.max(1, Math.min(MAX_LEASE, Math.floor(limit.requests / LEASE_DIVISOR))) : 1;
      found = {
        requests: limit.requests,
        shared: limiterOf(make, limit, keyPrefix),
        lease,
        ahead: Math.floor(lease / 4),
        // Not the library's insuranceLimiter: an answer from the fallback must not read as the store answering.
        local: limit.onStoreError === 'local' && make !== memory ? limiterOf(memory, limit, keyPrefix) : undefined,
        held: new Map(),
      };
      limiters.set(name, found);
    }
    byLimit.set(limit, found);
    return found;
  };

  const hold = (l: Limiters, key: string): Held => {
    let h = l.held.get(key);
    if (h) return h;
    if (l.held.size >= MAX_HELD) {
      const t = now();
      for (const [k, v] of l.held) if (v.pending === undefined && v.current.until <= t && (v.next?.until ?? 0) <= t) l.held.delete(k);
      if (l.held.size >= MAX_HELD) for (const [k, v] of l.held) if (v.pending === undefined) l.held.delete(k);
    }
    h = { current: SPENT, next: undefined, pending: undefined };
    l.held.set(key, h);
    return h;
  };
  /** A request served from what this process holds, or undefined when the store must be asked. */
  const take = (l: Limiters, key: string, h: Held, local: boolean): RateCount | undefined => {
    const t = now();
    let c = h.current;
    if (c.until <= t || (c.left === 0 && !c.exhausted)) {
      const n = h.next;
      h.next = undefined;
      if (n === undefined || n.until <= t) {
        // Only this entry: a caller still holding an entry a newer one has replaced must not drop the newer one's lease.
        if (h.pending === undefined && l.held.get(key) === h) l.held.delete(key);
        return undefined;
      }
      h.current = c = n;
    }
    const resetMs = c.until - t;
    if (c.left > 0) {
      c.left--;
      // Down to a quarter: the next lease is asked for now, so the requests after this one need not wait for it.
      // (A failure of it rejects no one: lease() handles its own promise, and the caller that later finds nothing
      // left meets the store's error through a lease of its own.)
      if (c.left <= l.ahead && l.ahead > 0 && h.pending === undefined && h.next === undefined && !c.exhausted) void lease(l, h, key);
      return { allowed: true, remaining: c.remaining + c.left, resetMs, local };
    }
    // A key over its limit is refused here until its window ends: a client hammering past its limit costs no round
    // trip, and nothing is admitted that the shared count would refuse.
    return { allowed: false, remaining: 0, resetMs, local };
  };
  const lease = (l: Limiters, h: Held, key: string): Promise<void> => {
    // The window's end is timed from before the request went out: the answer's own delay can only shorten the lease.
    const sent = now();
    const grant = (left: number, res: RateLimiterRes, exhausted: boolean) => {
      h.next = { left, until: sent + Math.max(res.msBeforeNext, 1), remaining: res.remainingPoints, exhausted };
    };
    h.pending = l.shared(key, l.lease).then(
      (res) => grant(l.lease, res, false),
      (rej: unknown) => {
        // The library rejects with a RateLimiterRes when the count passed the limit (the store's error otherwise):
        // what of the lease still fitted under the limit is granted, and the window is used up.
        if (!(rej instanceof RateLimiterRes)) throw rej;
        grant(Math.max(0, l.lease - Math.max(0, rej.consumedPoints - l.requests)), rej, true);
      },
    );
    // Also what keeps a lease taken ahead from rejecting unhandled: a store failure then reaches the caller that
    // finds nothing left to take, through its own lease.
    const done = () => {
      h.pending = undefined;
    };
    h.pending.then(done, done);
    return h.pending;
  };
  const acquire = async (l: Limiters, key: string): Promise<RateCount> => {
    for (;;) {
      const h = hold(l, key);
      const mine = h.pending === undefined;
      await (h.pending ?? lease(l, h, key));
      // The caller that asked the store reports its answer (local: false), so an answer after an outage is seen.
      // An entry replaced meanwhile (its window ended and a newer caller started another) is not taken from: the
      // next turn waits for the newer entry's lease instead of asking the store once more.
      const got = l.held.get(key) === h ? take(l, key, h, !mine) : undefined;
      if (got) return got;
    }
  };
  const counted = (res: RateLimiterRes): RateCount => ({
    allowed: true,
    remaining: res.remainingPoints,
    resetMs: res.msBeforeNext,
    local: true,
  });
  const refused = (rej: unknown): RateCount => {
    if (!(rej instanceof RateLimiterRes)) throw rej;
    return { allowed: false, remaining: 0, resetMs: Math.max(rej.msBeforeNext, 1), local: true };
  };
  return {
    hit(limit, key) {
      const l = byLimit.get(limit) ?? build(limit);
      const h = l.held.get(key);
      const served = h === undefined ? undefined : take(l, key, h, true);
      if (served) return served;
      return acquire(l, key).catch((err: unknown) => {
        if (l.local === undefined) throw err;
        return l.local(key, 1).then(counted, refused);
      });
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
    true,
  );
}

/** Counters in this process: the memory store's (one process is the whole deployment there). */
export function createMemoryRateCounter(now: () => number = Date.now): RateCounter {
  // One process is the whole deployment: nothing to share, so no leases (every count exact).
  return createCounter(memory, now, false);
}
