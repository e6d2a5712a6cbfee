import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import { Redis } from 'ioredis';
import { createRedisRateCounter, type RateWindow } from '../../src/store/rate-counter.ts';
import { createRedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const log = createLogger({ level: 'silent' });

const limit = (over: Partial<RateWindow> = {}): RateWindow => ({
  id: `t${randomUUID().slice(0, 8)}`,
  requests: 3,
  windowSeconds: 60,
  burst: 0,
  onStoreError: 'throw',
  ...over,
});

/** Stores that share state as replicas do: two Redis stores on one prefix, or the one memory store twice. */
interface Pair {
  readonly a: Store;
  readonly b: Store;
  close(): Promise<void>;
}

/** What admission and /auth rely on from Store.rates, whichever store holds the counts. */
function rateCounterConformance(name: string, open: () => Promise<Pair>): void {
  describe(`${name} rate counter`, () => {
    it('admits `requests` per window with what remains, then refuses with the time left', async () => {
      const { a, close } = await open();
      try {
        const l = limit();
        const counts = [];
        for (let i = 0; i < 4; i++) counts.push(await a.rates.hit(l, 'k'));
        expect(counts.map((c) => [c.allowed, c.remaining])).toEqual([
          [true, 2],
          [true, 1],
          [true, 0],
          [false, 0],
        ]);
        const last = counts[3];
        expect(last?.resetMs).toBeGreaterThan(0);
        expect(last?.resetMs).toBeLessThanOrEqual(60_000);
        expect(counts.every((c) => !c.local || c === last)).toBe(true);
      } finally {
        await close();
      }
    });

    it('shares one count between replicas, and keeps keys and limits apart', async () => {
      const { a, b, close } = await open();
      try {
        const l = limit();
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).rates.hit(l, 'shared')));
        expect(results.filter((r) => r.allowed).length).toBe(3);
        expect((await a.rates.hit(l, 'other')).allowed).toBe(true);
        expect((await b.rates.hit(limit(), 'shared')).allowed).toBe(true);
      } finally {
        await close();
      }
    });

    it('never admits more than the limit across replicas when it serves requests from leases (limit 100, 300 concurrent hits)', async () => {
      const { a, b, close } = await open();
      try {
        const l = limit({ requests: 100 });
        const results = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).rates.hit(l, 'leased')));
        expect(results.filter((r) => r.allowed).length).toBe(100);
        const refused = results.find((r) => !r.allowed);
        expect(refused?.resetMs).toBeGreaterThan(0);
      } finally {
        await close();
      }
    });

    it('starts a new window once the old one ends', async () => {
      const { a, close } = await open();
      try {
        const l = limit({ requests: 1, windowSeconds: 1 });
        expect((await a.rates.hit(l, 'w')).allowed).toBe(true);
        const refused = await a.rates.hit(l, 'w');
        expect(refused.allowed).toBe(false);
        await sleep(refused.resetMs + 100);
        expect((await a.rates.hit(l, 'w')).allowed).toBe(true);
      } finally {
        await close();
      }
    });

    it('admits `burst` more once a window is used up, then refuses', async () => {
      const { a, close } = await open();
      try {
        const l = limit({ requests: 2, burst: 2 });
        const allowed = [];
        for (let i = 0; i < 6; i++) allowed.push((await a.rates.hit(l, 'b')).allowed);
        expect(allowed).toEqual([true, true, true, true, false, false]);
      } finally {
        await close();
      }
    });
  });
}

rateCounterConformance('memory', async () => {
  const store = createMemoryStore();
  return { a: store, b: store, close: () => store.close() };
});

async function redisPair(url: string, prefix = `gh-rl-${randomUUID()}:`): Promise<Pair> {
  const a = createRedisStore({ url, keyPrefix: prefix, log });
  const b = createRedisStore({ url, keyPrefix: prefix, log });
  for (const s of [a, b]) if (!(await s.ready(5000))) throw new Error(`redis at ${url} is not ready`);
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

rateCounterConformance('redis', () => redisPair(inject('redisUrl')));

describe('redis rate counter leases', () => {
  /** One hit after another, each given a millisecond (as a caller's next request would come later): whether it waited. */
  async function steady(rates: Store['rates'], l: RateWindow, key: string, n: number): Promise<{ waited: number; allowed: number }> {
    let waited = 0;
    let allowed = 0;
    for (let i = 0; i < n; i++) {
      const got = rates.hit(l, key);
      if (got instanceof Promise) waited++;
      if ((await got).allowed) allowed++;
      await sleep(1);
    }
    return { waited, allowed };
  }

  it('serves a steady caller from memory: only the first hit waits for Redis, the next lease is taken ahead', async () => {
    const { a, close } = await redisPair(inject('redisUrl'));
    try {
      // 10,000 a minute: leases of 128, the next asked for with 32 left. Without leasing ahead, 400 hits wait 4 times.
      const l = limit({ requests: 10_000 });
      const { waited, allowed } = await steady(a.rates, l, 'steady', 400);
      expect(allowed).toBe(400);
      // The first hit, and at most one more should Redis ever take longer than 32 hits' milliseconds to answer.
      expect(waited).toBeGreaterThanOrEqual(1);
      expect(waited).toBeLessThanOrEqual(2);
    } finally {
      await close();
    }
  });

  it('a burst wider than a lease takes one lease at a time: 60 concurrent hits on a limit of 75 (leases of 3) are all admitted', async () => {
    const { a, b, close } = await redisPair(inject('redisUrl'));
    try {
      const l = limit({ requests: 75 });
      const results = await Promise.all(Array.from({ length: 60 }, () => a.rates.hit(l, 'burst')));
      expect(results.filter((r) => r.allowed).length).toBe(60);
      // The shared count moved by what was admitted (and at most the lease this replica still holds), not by a lease
      // per waiting caller: the other replica still gets its lease of 3 and sees what is left.
      const other = await b.rates.hit(l, 'burst');
      expect(other.allowed).toBe(true);
      expect(other.remaining).toBeGreaterThanOrEqual(75 - 60 - 3 - 1);
    } finally {
      await close();
    }
  });

  it("times a lease's window from before its request went out: a slow answer cannot stretch it past the store's window", async () => {
    const client = new Redis(inject('redisUrl'), { keyPrefix: `gh-rl-${randomUUID()}:`, lazyConnect: false });
    try {
      await client.ping();
      let clock = 1_000_000;
      const rates = createRedisRateCounter(client, () => clock);
      // 100 a second: leases of 4. The answer comes (by this process's clock) 500 ms after the request went out.
      const l = limit({ requests: 100, windowSeconds: 1 });
      const first = rates.hit(l, 'slow');
      clock += 500;
      expect((await first).allowed).toBe(true);
      // 1.1 s after the request: the store's window (1 s from when it counted the lease) is over, so the three
      // requests left of that lease are not admitted from memory; timed from the answer, they would still be.
      clock += 600;
      expect(rates.hit(l, 'slow')).toBeInstanceOf(Promise);
    } finally {
      client.disconnect();
    }
  });

  it('never admits more than the limit across replicas that lease ahead, and strands nothing a caller keeps asking for', async () => {
    const { a, b, close } = await redisPair(inject('redisUrl'));
    try {
      // 100 a minute: leases of 4, the next asked for with one left; hits alternate replicas and leave each lease time to land.
      const l = limit({ requests: 100 });
      let allowed = 0;
      for (let i = 0; i < 150; i++) {
        if ((await (i % 2 ? a : b).rates.hit(l, 'ahead')).allowed) allowed++;
        await sleep(1);
      }
      expect(allowed).toBe(100);
    } finally {
      await close();
    }
  });
});

describe('redis rate counter when Redis is down', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it("rejects with the store's error under 'throw', counts in this process under 'local', and is shared again once Redis is back", async () => {
    const server = await startRedis();
    servers.push(server);
    const { a, b, close } = await redisPair(server.url);
    try {
      const open = limit({ onStoreError: 'throw' });
      const local = limit({ onStoreError: 'local', requests: 2 });
      await server.stop();
      await expect(a.rates.hit(open, 'k')).rejects.toBeInstanceOf(Error);
      const counted = [await a.rates.hit(local, 'k'), await a.rates.hit(local, 'k'), await a.rates.hit(local, 'k')];
      expect(counted.map((c) => [c.allowed, c.local])).toEqual([
        [true, true],
        [true, true],
        [false, true],
      ]);
      // Per process: the other replica has a count of its own meanwhile.
      expect((await b.rates.hit(local, 'k')).allowed).toBe(true);

      await server.start();
      const back = limit({ onStoreError: 'local', requests: 1 });
      await expect
        .poll(async () => (await a.rates.hit(back, `probe-${randomUUID()}`)).local, { timeout: 10_000, interval: 100 })
        .toBe(false);
      expect(await a.rates.hit(back, 'again')).toMatchObject({ allowed: true, local: false });
      await expect
        .poll(async () => (await b.rates.hit(back, `probe-${randomUUID()}`)).local, { timeout: 10_000, interval: 100 })
        .toBe(false);
      expect(await b.rates.hit(back, 'again')).toMatchObject({ allowed: false, local: false });
    } finally {
      await close();
    }
  });
});
