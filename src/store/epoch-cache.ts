/**
 * A process cache of values whose truth lives in the shared store and whose changes arrive by pub/sub.
 * Two rules keep it exact (a value changed on any replica is never served from here once the message is in):
 * - An entry is served only under the subscription epoch it was filled in: messages sent while the
 *   subscription was down are lost, so nothing filled before a reconnect, or while down (epoch 0), is served.
 * - A read overtaken by an invalidation is never stored: it may have seen the store before the change the
 *   message announces (the pending-promise-plus-sequence pattern of jose's remote JWKS).
 * Concurrent misses for one key share one store read; entries also expire after `maxAgeMs` regardless.
 */
export interface EpochCache<V> {
  /** The value filled under the current epoch less than maxAgeMs ago, else undefined. Allocates nothing. */
  /** `at`: the caller's own now(), when it has one (the hot path reads the clock once). */
  get(key: string, at?: number): V | undefined;
  /** The value held for `key` whatever its age or epoch (to update in place what a caller holds). */
  held(key: string): V | undefined;
  /**
   * The miss path (callers ask get() first): runs `read` and stores its answer (undefined: nothing to store)
   * unless an invalidation or this process's own write overtook it.
   * Concurrent callers share one read unless `join: false` (a read that must see the store itself).
   * A read overtaken by `invalidate(key, value)` resolves to `value`, the newer truth; overtaken by a plain
   * invalidation, to its own answer, which is then not stored.
   */
  load(key: string, read: () => Promise<V | undefined>, options?: { readonly join?: boolean }): Promise<V | undefined>;
  /** Stores a value this process knows to be current (its own write); nothing under epoch 0. */
  set(key: string, value: V): void;
  /**
   * What a pub/sub message says about `key`: the entry is dropped (or replaced by `value`), reads under
   * way are overtaken, and later callers start a read of their own.
   */
  invalidate(key: string, value?: V): void;
  delete(key: string): void;
  readonly size: number;
}

export interface EpochCacheOptions {
  /** The store's subscription epoch: bumped on every (re)subscription, 0 while the subscription is down. */
  readonly subscriptionEpoch: () => number;
  readonly now: () => number;
  readonly maxAgeMs: number;
  /** Past this, the oldest entry makes room. */
  readonly maxEntries: number;
}

interface Entry<V> {
  readonly value: V;
  readonly epoch: number;
  readonly at: number;
}

interface Flight<V> {
  readonly epoch: number;
  overtaken: boolean;
  /** Set by invalidate(key, value) while the read was under way. */
  newer?: { readonly value: V };
  promise?: Promise<V | undefined>;
}

export function createEpochCache<V>(options: EpochCacheOptions): EpochCache<V> {
  const { subscriptionEpoch, now, maxAgeMs, maxEntries } = options;
  const entries = new Map<string, Entry<V>>();
  // Every read under way, by key (joined or not: each must learn of an invalidation), and the one to join.
  const flights = new Map<string, Set<Flight<V>>>();
  const joinable = new Map<string, Flight<V>>();

  const store = (key: string, value: V, epoch: number) => {
    // Messages sent while the subscription was down are lost: a value that spans a reconnect is not kept.
    if (epoch === 0 || epoch !== subscriptionEpoch()) return;
    entries.delete(key);
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
    entries.set(key, { value, epoch, at: now() });
  };

  const run = async (key: string, flight: Flight<V>, read: () => Promise<V | undefined>): Promise<V | undefined> => {
    const value = await read();
    if (flight.overtaken) return flight.newer ? flight.newer.value : value;
    if (value !== undefined) store(key, value, flight.epoch);
    return value;
  };

  return {
    get(key, at) {
      const hit = entries.get(key);
      if (hit === undefined) return undefined;
      const epoch = subscriptionEpoch();
      if (hit.epoch === epoch && epoch !== 0 && (at ?? now()) - hit.at < maxAgeMs) return hit.value;
      entries.delete(key);
      return undefined;
    },

    held: (key) => entries.get(key)?.value,

    load(key, read, loadOptions) {
      const join = loadOptions?.join ?? true;
      if (join) {
        const shared = joinable.get(key)?.promise;
        if (shared) return shared;
      }
      const flight: Flight<V> = { epoch: subscriptionEpoch(), overtaken: false };
      let forKey = flights.get(key);
      if (!forKey) flights.set(key, (forKey = new Set()));
      forKey.add(flight);
      const all = forKey;
      if (join) joinable.set(key, flight);
      const promise = run(key, flight, read).finally(() => {
        if (joinable.get(key) === flight) joinable.delete(key);
        all.delete(flight);
        if (all.size === 0 && flights.get(key) === all) flights.delete(key);
      });
      flight.promise = promise;
      return promise;
    },

    set(key, value) {
      // Reads under way may have seen the store before this write: their answer must not replace it.
      for (const flight of flights.get(key) ?? []) flight.overtaken = true;
      joinable.delete(key);
      store(key, value, subscriptionEpoch());
    },

    invalidate(key, value?: V) {
      for (const flight of flights.get(key) ?? []) {
        flight.overtaken = true;
        if (value !== undefined) flight.newer = { value };
      }
      joinable.delete(key);
      entries.delete(key);
      if (value !== undefined) store(key, value, subscriptionEpoch());
    },

    delete(key) {
      entries.delete(key);
    },

    get size() {
      return entries.size;
    },
  };
}
