import { createLocks } from './lock.ts';
import { createMemoryRateCounter } from './rate-counter.ts';
import type { Store } from './store.ts';

interface Entry {
  value: string;
  expiresAt: number;
}
interface SetEntry {
  members: Set<string>;
  expiresAt: number;
}

/**
 * A single-process Store for development and tests of the dev setup.
 * Sessions do not survive a restart and are not shared: main.ts warns loudly and production refuses it.
 */
export function createMemoryStore(options: { now?: () => number; sweepIntervalMs?: number } = {}): Store {
  const now = options.now ?? Date.now;
  const values = new Map<string, Entry>();
  const sets = new Map<string, SetEntry>();
  const handlers = new Map<string, Array<(m: string) => void>>();
  let closed = false;

  const live = (key: string): Entry | undefined => {
    const e = values.get(key);
    if (e && e.expiresAt <= now()) {
      values.delete(key);
      return undefined;
    }
    return e;
  };
  const liveSet = (key: string): SetEntry | undefined => {
    const e = sets.get(key);
    if (e && e.expiresAt <= now()) {
      sets.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = setInterval(() => {
    for (const key of values.keys()) live(key);
    for (const key of sets.keys()) liveSet(key);
  }, options.sweepIntervalMs ?? 30_000);
  sweep.unref();

  const setIfAbsent = async (key: string, value: string, ttlMs: number) => {
    if (live(key)) return false;
    values.set(key, { value, expiresAt: now() + ttlMs });
    return true;
  };
  const locks = createLocks({
    setIfAbsent,
    async compareAndDelete(key, expected) {
      if (live(key)?.value !== expected) return false;
      values.delete(key);
      return true;
    },
    async compareAndExpire(key, expected, ttlMs) {
      const e = live(key);
      if (e?.value !== expected) return false;
      e.expiresAt = now() + ttlMs;
      return true;
    },
    exists: async (key) => live(key) !== undefined,
  });

  return {
    kind: 'memory',
    ...locks,
    rates: createMemoryRateCounter(),
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, ttlMs) {
      values.set(key, { value, expiresAt: now() + ttlMs });
    },
    setIfAbsent,
    async take(key) {
      const e = live(key);
      values.delete(key);
      return e?.value ?? null;
    },
    async del(...keys) {
      let n = 0;
      for (const k of keys) {
        if (live(k) && values.delete(k)) n++;
        else if (liveSet(k) && sets.delete(k)) n++;
      }
      return n;
    },
    async compareAndSet(key, expected, next, ttlMs) {
      if (live(key)?.value !== expected) return false;
      values.set(key, { value: next, expiresAt: now() + ttlMs });
      return true;
    },
    async setAdd(key, member, ttlMs) {
      const e = liveSet(key) ?? { members: new Set<string>(), expiresAt: 0 };
      e.members.add(member);
      e.expiresAt = Math.max(e.expiresAt, now() + ttlMs);
      sets.set(key, e);
    },
    async setMembers(key) {
      return [...(liveSet(key)?.members ?? [])];
    },
    async publish(channel, message) {
      for (const h of handlers.get(channel) ?? []) queueMicrotask(() => h(message));
    },
    async subscribe(channel, handler) {
      handlers.set(channel, [...(handlers.get(channel) ?? []), handler]);
    },
    subscriptionEpoch() {
      return closed ? 0 : 1;
    },
    async ping() {
      if (closed) throw new Error('memory store closed');
    },
    async close() {
      closed = true;
      clearInterval(sweep);
      handlers.clear();
    },
  };
}
