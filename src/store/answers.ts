import type { LockHandle, Store } from './store.ts';

/**
 * `store`, with `onAnswer` called each time one of its commands resolves: how the composition root learns that
 * Redis answers again after an outage (a frozen Redis never reconnects, so its `ready` event says nothing). A
 * failed command calls nothing; the request it fails is counted where its error is answered.
 */
export function observeAnswers(store: Store, onAnswer: () => void): Store {
  const answered = <T>(value: T): T => {
    onAnswer();
    return value;
  };
  const handle = (h: LockHandle | undefined): LockHandle | undefined => {
    onAnswer();
    if (h === undefined) return undefined;
    return { name: h.name, renew: () => h.renew().then(answered), release: () => h.release().then(answered) };
  };
  return {
    kind: store.kind,
    // A count this process made because Redis failed is no answer from Redis.
    rates: {
      hit(limit, key) {
        const count = store.rates.hit(limit, key);
        return count instanceof Promise ? count.then((c) => (c.local ? c : answered(c))) : count;
      },
    },
    get: (key) => store.get(key).then(answered),
    set: (key, value, ttlMs) => store.set(key, value, ttlMs).then(answered),
    setIfAbsent: (key, value, ttlMs) => store.setIfAbsent(key, value, ttlMs).then(answered),
    take: (key) => store.take(key).then(answered),
    del: (...keys) => store.del(...keys).then(answered),
    compareAndSet: (key, expected, next, ttlMs) => store.compareAndSet(key, expected, next, ttlMs).then(answered),
    setAdd: (key, member, ttlMs) => store.setAdd(key, member, ttlMs).then(answered),
    setMembers: (key) => store.setMembers(key).then(answered),
    acquireLock: (name, ttlMs) => store.acquireLock(name, ttlMs).then(handle),
    lockHeld: (name) => store.lockHeld(name).then(answered),
    publish: (channel, message) => store.publish(channel, message).then(answered),
    subscribe: (channel, handler) => store.subscribe(channel, handler),
    subscriptionEpoch: () => store.subscriptionEpoch(),
    ping: () => store.ping().then(answered),
    close: () => store.close(),
  };
}
