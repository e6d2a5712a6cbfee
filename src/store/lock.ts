import { randomBytes } from 'node:crypto';
import type { LockHandle, Locks } from './store.ts';

/**
 * The atomic operations a backend provides for locks; each must be one step on the server
 * (Redis: `SET NX PX` and Lua scripts), or two owners could interleave between a read and a write.
 */
export interface LockCells {
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Deletes only if the value is still `expected`. */
  compareAndDelete(key: string, expected: string): Promise<boolean>;
  /** Sets the TTL only if the value is still `expected`. */
  compareAndExpire(key: string, expected: string, ttlMs: number): Promise<boolean>;
  exists(key: string): Promise<boolean>;
}

/** Locks as `lock:<name>` keys holding a random token, so only the owner can renew or release one. */
export function createLocks(cells: LockCells): Locks {
  const keyOf = (name: string) => `lock:${name}`;
  return {
    async acquireLock(name, ttlMs) {
      const key = keyOf(name);
      const token = randomBytes(16).toString('base64url');
      if (!(await cells.setIfAbsent(key, token, ttlMs))) return undefined;
      const handle: LockHandle = {
        name,
        renew: () => cells.compareAndExpire(key, token, ttlMs),
        release: () => cells.compareAndDelete(key, token),
      };
      return handle;
    },
    lockHeld: (name) => cells.exists(keyOf(name)),
  };
}
