import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../../src/store/store.ts';

/** One store under test, with its clock and its peers. */
export interface StoreFixture {
  readonly store: Store;
  /** Lets `ms` pass for the store's clock: a real wait for Redis, a step of the injected clock for memory. */
  elapse(ms: number): Promise<void>;
  /** Another replica's view of the same shared state (the same store where there is only one process). */
  replica(): Promise<Store>;
  /** Closes the store and every replica. */
  close(): Promise<void>;
}

/** A fixture whose server the suite may kill and start again on the same address. */
export interface RestartableFixture extends StoreFixture {
  killServer(): Promise<void>;
  startServer(): Promise<void>;
}

export interface ConformanceOptions {
  /** Backends with a server of their own: the reconnection cases run against a fixture this builds. */
  readonly restartable?: () => Promise<RestartableFixture>;
}

// Long enough that a busy machine does not expire a record before the first look, short enough to wait out.
const TTL = 300;
const PAST_TTL = TTL + 200;

/** Waits for the subscription, then publishes probes until one reached every handler: SUBSCRIBE is acked asynchronously. */
async function untilDelivered(
  publisher: Store,
  subscribers: readonly Store[],
  channel: string,
  seen: () => readonly string[][],
): Promise<void> {
  await vi.waitFor(
    () => {
      for (const s of subscribers) expect(s.subscriptionEpoch()).not.toBe(0);
    },
    { timeout: 5000, interval: 20 },
  );
  await vi.waitFor(
    async () => {
      const probe = `probe-${randomUUID()}`;
      await publisher.publish(channel, probe).catch(() => undefined);
      await sleep(20);
      for (const got of seen()) expect(got).toContain(probe);
    },
    { timeout: 5000, interval: 50 },
  );
}

/**
 * The behaviour every Store backend must have, as sessions, revocations, login transactions and the
 * refresh lock rely on it. Each backend's test file calls this with a factory for a fresh, isolated store.
 */
export function storeConformance(name: string, make: () => Promise<StoreFixture>, options: ConformanceOptions = {}): void {
  describe(`${name} store conformance`, () => {
    let fx: StoreFixture;
    let store: Store;
    beforeEach(async () => {
      fx = await make();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.close();
    });

    describe('key-value', () => {
      it('get returns what set stored, null for a key never set, and set replaces the value', async () => {
        expect(await store.get('absent')).toBeNull();
        await store.set('k', 'one', TTL);
        expect(await store.get('k')).toBe('one');
        await store.set('k', 'two', TTL);
        expect(await store.get('k')).toBe('two');
      });

      it('a value is gone once its TTL has passed', async () => {
        await store.set('short', 'v', TTL);
        await store.set('long', 'v', TTL * 10);
        expect(await store.get('short')).toBe('v');
        await fx.elapse(PAST_TTL);
        expect(await store.get('short')).toBeNull();
        expect(await store.get('long')).toBe('v');
      });

      it('setIfAbsent creates a key only when it is absent or expired, and never overwrites', async () => {
        expect(await store.setIfAbsent('once', 'first', TTL)).toBe(true);
        expect(await store.setIfAbsent('once', 'second', TTL)).toBe(false);
        expect(await store.get('once')).toBe('first');
        await fx.elapse(PAST_TTL);
        expect(await store.setIfAbsent('once', 'third', TTL)).toBe(true);
        expect(await store.get('once')).toBe('third');
      });

      it('setIfAbsent under concurrency: exactly one of many callers creates the key', async () => {
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.setIfAbsent('race', `v${i}`, TTL * 10)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.get('race')).toBe(`v${results.indexOf(true)}`);
      });

      it('take returns the value once and deletes it; an expired value is not taken', async () => {
        await store.set('tx', 'payload', TTL);
        expect(await store.take('tx')).toBe('payload');
        expect(await store.take('tx')).toBeNull();
        expect(await store.get('tx')).toBeNull();
        await store.set('stale', 'payload', TTL);
        await fx.elapse(PAST_TTL);
        expect(await store.take('stale')).toBeNull();
      });

      it('take is single-use under concurrency: exactly one of many concurrent takes gets the value', async () => {
        await store.set('tx', 'payload', TTL * 10);
        const taken = await Promise.all(Array.from({ length: 20 }, () => store.take('tx')));
        expect(taken.filter((v) => v !== null)).toEqual(['payload']);
      });

      it('del removes values and sets and counts what it removed', async () => {
        await store.set('a', '1', TTL * 10);
        await store.setAdd('idx', 'm', TTL * 10);
        expect(await store.del('a')).toBe(1);
        expect(await store.del('a')).toBe(0);
        expect(await store.del('idx')).toBe(1);
        expect(await store.get('a')).toBeNull();
        expect(await store.setMembers('idx')).toEqual([]);
      });

      it('compareAndSet replaces only the expected value, creates nothing, and sets the TTL anew', async () => {
        expect(await store.compareAndSet('cas', 'v1', 'v2', TTL)).toBe(false);
        expect(await store.get('cas')).toBeNull();
        await store.set('cas', 'v1', TTL);
        expect(await store.compareAndSet('cas', 'other', 'v2', TTL)).toBe(false);
        expect(await store.get('cas')).toBe('v1');
        expect(await store.compareAndSet('cas', 'v1', 'v2', TTL * 10)).toBe(true);
        expect(await store.get('cas')).toBe('v2');
        await fx.elapse(PAST_TTL);
        expect(await store.get('cas')).toBe('v2');
        expect(await store.compareAndSet('cas', 'v2', 'v3', TTL)).toBe(true);
        await fx.elapse(PAST_TTL);
        expect(await store.get('cas')).toBeNull();
      });

      it('compareAndSet does not revive an expired value', async () => {
        await store.set('cas', 'v1', TTL);
        await fx.elapse(PAST_TTL);
        expect(await store.compareAndSet('cas', 'v1', 'v2', TTL)).toBe(false);
        expect(await store.get('cas')).toBeNull();
      });

      it('compareAndSet race: of many writers starting from the same value exactly one wins, and its value stays', async () => {
        await store.set('ver', 'v0', TTL * 10);
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.compareAndSet('ver', 'v0', `w${i}`, TTL * 10)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await store.get('ver')).toBe(`w${results.indexOf(true)}`);
      });

      it('setAdd keeps each member once and setMembers lists them; a missing set is empty', async () => {
        expect(await store.setMembers('idx')).toEqual([]);
        await store.setAdd('idx', 'a', TTL);
        await store.setAdd('idx', 'b', TTL);
        await store.setAdd('idx', 'a', TTL);
        expect((await store.setMembers('idx')).sort()).toEqual(['a', 'b']);
      });

      it('a set lives as long as the longest TTL any setAdd asked for, then is gone', async () => {
        await store.setAdd('idx', 'a', TTL * 3);
        await store.setAdd('idx', 'b', TTL / 3);
        await fx.elapse(PAST_TTL);
        expect((await store.setMembers('idx')).sort()).toEqual(['a', 'b']);
        await fx.elapse(TTL * 2);
        expect(await store.setMembers('idx')).toEqual([]);
      });
    });

    describe('locks', () => {
      it('a held lock excludes other acquirers until released; other names are independent', async () => {
        const a = await store.acquireLock('job', TTL * 10);
        expect(a?.name).toBe('job');
        expect(await store.acquireLock('job', TTL * 10)).toBeUndefined();
        expect(await store.lockHeld('job')).toBe(true);
        expect(await store.acquireLock('other-job', TTL * 10)).toBeDefined();
        expect(await a?.release()).toBe(true);
        expect(await store.lockHeld('job')).toBe(false);
        expect(await store.acquireLock('job', TTL * 10)).toBeDefined();
      });

      it('of many concurrent acquirers exactly one obtains the lock', async () => {
        const handles = await Promise.all(Array.from({ length: 20 }, () => store.acquireLock('job', TTL * 10)));
        expect(handles.filter((h) => h !== undefined)).toHaveLength(1);
      });

      it('an expired lock is no longer held and another acquirer obtains it', async () => {
        expect(await store.acquireLock('job', TTL)).toBeDefined();
        await fx.elapse(PAST_TTL);
        expect(await store.lockHeld('job')).toBe(false);
        expect(await store.acquireLock('job', TTL)).toBeDefined();
      });

      it("only the owner releases: a handle whose lock expired and passed on cannot release the new owner's", async () => {
        const first = await store.acquireLock('job', TTL);
        await fx.elapse(PAST_TTL);
        const second = await store.acquireLock('job', TTL * 10);
        expect(second).toBeDefined();
        expect(await first?.release()).toBe(false);
        expect(await store.lockHeld('job')).toBe(true);
        expect(await store.acquireLock('job', TTL * 10)).toBeUndefined();
        expect(await second?.release()).toBe(true);
        expect(await second?.release()).toBe(false);
      });

      it('renewing keeps the lock past its TTL', async () => {
        const lock = await store.acquireLock('job', TTL * 2);
        for (let i = 0; i < 4; i++) {
          await fx.elapse(TTL);
          expect(await lock?.renew()).toBe(true);
        }
        expect(await store.lockHeld('job')).toBe(true);
        expect(await store.acquireLock('job', TTL)).toBeUndefined();
      });

      it("a renewal by a handle that lost the lock fails and leaves the new owner's lock as it is", async () => {
        const first = await store.acquireLock('job', TTL);
        await fx.elapse(PAST_TTL);
        expect(await first?.renew()).toBe(false);
        expect(await store.lockHeld('job')).toBe(false);
        const second = await store.acquireLock('job', TTL / 3);
        expect(second).toBeDefined();
        expect(await first?.renew()).toBe(false);
        await fx.elapse(TTL / 3 + 100);
        // Had the stale renewal set its longer TTL on the new owner's lock, the lock would still be held.
        expect(await store.lockHeld('job')).toBe(false);
        expect(await second?.release()).toBe(false);
      });
    });

    describe('bus', () => {
      it("delivers a message to every subscriber on every replica, the publisher's own included, once each", async () => {
        const peer = await fx.replica();
        const got = { own: [] as string[], ownSecond: [] as string[], peer: [] as string[], otherChannel: [] as string[] };
        await store.subscribe('news', (m) => got.own.push(m));
        await store.subscribe('news', (m) => got.ownSecond.push(m));
        await peer.subscribe('news', (m) => got.peer.push(m));
        await peer.subscribe('sports', (m) => got.otherChannel.push(m));
        await untilDelivered(store, [store, peer], 'news', () => [got.own, got.ownSecond, got.peer]);

        await store.publish('news', 'hello');
        await vi.waitFor(
          () => {
            expect(got.own.filter((m) => m === 'hello')).toHaveLength(1);
            expect(got.ownSecond.filter((m) => m === 'hello')).toHaveLength(1);
            expect(got.peer.filter((m) => m === 'hello')).toHaveLength(1);
          },
          { timeout: 5000, interval: 20 },
        );
        await sleep(50);
        expect(got.own.filter((m) => m === 'hello')).toHaveLength(1);
        expect(got.otherChannel).toEqual([]);
      });

      it('the subscription epoch is non-zero while subscribed and drops to 0 once closed', async () => {
        await store.subscribe('news', () => undefined);
        await vi.waitFor(() => expect(store.subscriptionEpoch()).not.toBe(0), { timeout: 5000, interval: 20 });
        await store.close();
        // Redis notices its subscriber connection closing an event later than close() resolves.
        await vi.waitFor(() => expect(store.subscriptionEpoch()).toBe(0), { timeout: 5000, interval: 20 });
      });
    });

    // oxlint-disable-next-line vitest/no-conditional-tests -- only a store with a server has one to restart (not memory)
    if (options.restartable) {
      const restartable = options.restartable;
      describe('after the server restarts (backends with a server only)', () => {
        let rx: RestartableFixture;
        beforeEach(async () => {
          rx = await restartable();
        });
        afterEach(async () => {
          await rx.close();
        });

        it('the subscription comes back under a new epoch and messages are delivered again; records work again', async () => {
          const got: string[] = [];
          await rx.store.subscribe('news', (m) => got.push(m));
          await untilDelivered(rx.store, [rx.store], 'news', () => [got]);
          const before = rx.store.subscriptionEpoch();

          await rx.killServer();
          await vi.waitFor(() => expect(rx.store.subscriptionEpoch()).toBe(0), { timeout: 5000, interval: 20 });
          await expect(rx.store.get('k')).rejects.toThrow();
          await rx.startServer();

          await vi.waitFor(
            () => {
              expect(rx.store.subscriptionEpoch()).not.toBe(0);
              expect(rx.store.subscriptionEpoch()).not.toBe(before);
            },
            { timeout: 10_000, interval: 50 },
          );
          await untilDelivered(rx.store, [rx.store], 'news', () => [got]);
          await vi.waitFor(
            async () => {
              await rx.store.set('k', 'back', TTL * 10);
              expect(await rx.store.get('k')).toBe('back');
            },
            { timeout: 10_000, interval: 100 },
          );
        });
      });
    }
  });
}
