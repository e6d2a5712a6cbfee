import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/observability/logger.ts';
import { createRedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { storeConformance, type RestartableFixture, type StoreFixture } from './conformance.ts';

const log = createLogger({ level: 'silent' });

/** Stores on one Redis under one fresh key prefix: replicas of one deployment, isolated from every other test. */
async function fixtureOn(url: string): Promise<StoreFixture> {
  const prefix = `gh-conf-${randomUUID()}:`;
  const opened: Store[] = [];
  const open = async () => {
    const store = createRedisStore({ url, keyPrefix: prefix, log });
    opened.push(store);
    if (!(await store.ready(5000))) throw new Error(`redis at ${url} is not ready`);
    return store;
  };
  return {
    store: await open(),
    elapse: (ms) => sleep(ms),
    replica: open,
    close: async () => {
      await Promise.all(opened.map((s) => s.close()));
    },
  };
}

const servers: RedisServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

storeConformance('redis', () => fixtureOn(inject('redisUrl')), {
  // A redis-server of its own, so killing it disturbs no other test.
  restartable: async (): Promise<RestartableFixture> => {
    const server = await startRedis();
    servers.push(server);
    return { ...(await fixtureOn(server.url)), killServer: () => server.stop(), startServer: () => server.start() };
  },
});

describe('redis store key prefix', () => {
  it('keys and channels carry the configured prefix, so deployments sharing a Redis do not meet', async () => {
    const url = inject('redisUrl');
    const fx = await fixtureOn(url);
    const other = (await fixtureOn(url)).store;
    const raw = new Redis(url);
    try {
      const key = `probe-${randomUUID()}`;
      await fx.store.set(key, 'mine', 10_000);
      const found = await raw.keys(`*${key}`);
      expect(found).toEqual([expect.stringMatching(new RegExp(`^gh-conf-[0-9a-f-]{36}:${key}$`))]);
      expect(await raw.get(found[0] as string)).toBe('mine');
      expect(await other.get(key)).toBeNull();

      const heard = { mine: [] as string[], other: [] as string[] };
      await fx.store.subscribe('news', (m) => heard.mine.push(m));
      await other.subscribe('news', (m) => heard.other.push(m));
      // Both subscriptions are live once each hears its own deployment's message.
      for (const [store, got] of [
        [fx.store, heard.mine],
        [other, heard.other],
      ] as const) {
        await vi.waitFor(
          async () => {
            await store.publish('news', 'ping');
            await sleep(20);
            expect(got).toContain('ping');
          },
          { timeout: 5000, interval: 50 },
        );
      }
      await fx.store.publish('news', 'only-mine');
      await vi.waitFor(() => expect(heard.mine).toContain('only-mine'), { timeout: 5000, interval: 20 });
      await sleep(50);
      expect(heard.other).not.toContain('only-mine');
    } finally {
      raw.disconnect();
      await Promise.all([fx.close(), other.close()]);
    }
  });
});
