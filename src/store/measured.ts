import type { Metrics } from '../observability/metrics.ts';
import type { LockHandle, Store } from './store.ts';

/**
 * `store`, with each command's latency and failures counted by command name (a fixed set: the Store methods). The hot
 * path mostly answers from the in-process caches, so this costs a clock read or two per store round trip, not per request.
 */
export function measureStore(store: Store, metrics: Metrics): Store {
  const measured = <R>(command: string, started: number, pending: Promise<R>): Promise<R> =>
    pending.then(
      (value) => {
        metrics.storeCommand(command, (performance.now() - started) / 1000, false);
        return value;
      },
      (err: unknown) => {
        metrics.storeCommand(command, (performance.now() - started) / 1000, true);
        throw err;
      },
    );
  const timed =
    <A extends unknown[], R>(command: string, call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const started = performance.now();
      return measured(command, started, call(...args));
    };
  const handle = (h: LockHandle | undefined): LockHandle | undefined =>
    h === undefined
      ? undefined
      : { name: h.name, renew: timed('lock_renew', () => h.renew()), release: timed('lock_release', () => h.release()) };
  const acquire = timed('lock_acquire', (name: string, ttlMs: number) => store.acquireLock(name, ttlMs));
  return {
    kind: store.kind,
    // Only a count that went to the store is a store command: one answered from this process's lease costs nothing to time.
    rates: {
      hit(limit, key) {
        const started = performance.now();
        const count = store.rates.hit(limit, key);
        return count instanceof Promise ? measured('rate_hit', started, count) : count;
      },
    },
    get: timed('get', (key) => store.get(key)),
    set: timed('set', (key, value, ttlMs) => store.set(key, value, ttlMs)),
    setIfAbsent: timed('set_if_absent', (key, value, ttlMs) => store.setIfAbsent(key, value, ttlMs)),
    take: timed('take', (key) => store.take(key)),
    del: timed('del', (...keys) => store.del(...keys)),
    compareAndSet: timed('compare_and_set', (key, expected, next, ttlMs) => store.compareAndSet(key, expected, next, ttlMs)),
    setAdd: timed('set_add', (key, member, ttlMs) => store.setAdd(key, member, ttlMs)),
    setMembers: timed('set_members', (key) => store.setMembers(key)),
    acquireLock: (name, ttlMs) => acquire(name, ttlMs).then(handle),
    lockHeld: timed('lock_held', (name) => store.lockHeld(name)),
    publish: timed('publish', (channel, message) => store.publish(channel, message)),
    subscribe: (channel, handler) => store.subscribe(channel, handler),
    subscriptionEpoch: () => store.subscriptionEpoch(),
    ping: timed('ping', () => store.ping()),
    close: () => store.close(),
  };
}
