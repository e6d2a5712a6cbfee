/**
 * The narrow key-value interface everything shared across replicas goes through
 * (sessions, login transactions, locks, revocations, invalidation messages).
 * Keys are given without the configured prefix; implementations add it.
 */
export interface Store {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** SET NX PX: true when this call created the key. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Atomic read-and-delete (GETDEL): what makes single-use records single-use. */
  take(key: string): Promise<string | null>;
  del(...keys: string[]): Promise<number>;
  /** Replaces the value only if it is still `expected`; the TTL is set anew. */
  compareAndSet(key: string, expected: string, next: string, ttlMs: number): Promise<boolean>;
  /** Deletes only if the value is still `expected` (releasing a lock one still owns). */
  compareAndDelete(key: string, expected: string): Promise<boolean>;
  /** Sets the TTL only if the value is still `expected` (renewing a lock one still owns). */
  compareAndExpire(key: string, expected: string, ttlMs: number): Promise<boolean>;
  /** Sets the TTL of an existing key; false if the key is gone. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /** Adds to a set and makes the set live at least ttlMs more. */
  setAdd(key: string, member: string, ttlMs: number): Promise<void>;
  setMembers(key: string): Promise<string[]>;
  setRemove(key: string, member: string): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  /** Delivers messages of `channel` to `handler` on every replica, this one included. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /**
   * Bumped each time the subscription is (re)established; 0 while it is down.
   * Caches that rely on invalidation messages drop what they filled under an older epoch.
   */
  subscriptionEpoch(): number;
  ping(): Promise<void>;
  close(): Promise<void>;
}
