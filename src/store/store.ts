import type { RateCounter } from './rate-counter.ts';

/**
 * Key-value records with a TTL: sessions, login transactions, revocations, back-channel logout replays.
 * Keys are given without the configured prefix; implementations add it. Every write carries a TTL.
 */
export interface KeyValue {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** SET NX PX: true when this call created the key. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Atomic read-and-delete (GETDEL): what makes single-use records single-use. */
  take(key: string): Promise<string | null>;
  del(...keys: string[]): Promise<number>;
  /** Replaces the value only if it is still `expected`; the TTL is set anew. */
  compareAndSet(key: string, expected: string, next: string, ttlMs: number): Promise<boolean>;
  /** Adds to a set and makes the set live at least ttlMs more. */
  setAdd(key: string, member: string, ttlMs: number): Promise<void>;
  setMembers(key: string): Promise<string[]>;
}

/** A lock this process obtained, named by the random token only its owner knows. */
export interface LockHandle {
  readonly name: string;
  /** Sets the lock's TTL anew (compare-and-expire); false when it expired or another owner holds it now. */
  renew(): Promise<boolean>;
  /** Deletes the lock if this handle still owns it (compare-and-delete); false when it had expired or passed on. */
  release(): Promise<boolean>;
}

/**
 * Mutual exclusion across replicas (`SET NX PX` with a random token, renewed and released only by its owner).
 * The lock's TTL bounds how long a holder that died blocks the others.
 */
export interface Locks {
  /** A handle when this call obtained the lock; undefined when someone else holds it. Throws when the store fails. */
  acquireLock(name: string, ttlMs: number): Promise<LockHandle | undefined>;
  /** Whether anyone holds the lock now: how a waiter notices a holder that died without a word. */
  lockHeld(name: string): Promise<boolean>;
}

/** Messages to every replica, for invalidating in-process caches. */
export interface Bus {
  publish(channel: string, message: string): Promise<void>;
  /** Delivers messages of `channel` to `handler` on every replica, this one included. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /**
   * Bumped each time the subscription is (re)established; 0 while it is down.
   * Caches that rely on invalidation messages drop what they filled under an older epoch.
   */
  subscriptionEpoch(): number;
}

/**
 * Everything shared across replicas, as the composition root builds it (Redis, or memory in development).
 * Consumers take only the part they use: `KeyValue`, `Locks`, `Bus`.
 */
export interface Store extends KeyValue, Locks, Bus {
  readonly kind: 'redis' | 'memory';
  /** Rate-limit counters shared by every replica (store/rate-counter.ts). */
  readonly rates: RateCounter;
  ping(): Promise<void>;
  close(): Promise<void>;
}
