import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createBlocklist, type Blocklist } from '../../src/revocation/blocklist.ts';
import { createSessionManager, type SessionManager } from '../../src/session/sessions.ts';
import { createRedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { waitUntil } from '../helpers/token-kit.ts';

/**
 * Two replicas (A and B) on one real Redis. B's store is the real one, with a hand on its GETs: a matching
 * GET goes to Redis at once, but its answer is held until the test lets it through, so a revocation can land
 * on B while B is reading what the revocation replaces. The read predates the revocation; what B does with
 * its answer afterwards decides whether the revocation holds.
 */
describe('reads under way when a revocation lands', () => {
  const redisUrl = inject('redisUrl');
  const log = createLogger({ level: 'silent' });
  const opened: Store[] = [];
  let prefix: string;

  beforeEach(() => {
    prefix = `gh-inflight-${randomUUID()}:`;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  async function redisStore(): Promise<Store & { ready(ms: number): Promise<boolean> }> {
    const store = createRedisStore({ url: redisUrl, keyPrefix: prefix, log });
    opened.push(store);
    expect(await store.ready(5000)).toBe(true);
    return store;
  }

  /** The real store; GETs of keys ending in `suffix()` are counted, and held while the gate is closed. */
  function withHeldGets(store: Store, suffix: () => string) {
    let gate: Promise<void> = Promise.resolve();
    let open: () => void = () => undefined;
    const seen = { count: 0 };
    const get = async (key: string) => {
      const answer = store.get(key);
      if (!key.endsWith(suffix())) return answer;
      seen.count++;
      const value = await answer;
      await gate;
      return value;
    };
    const held = new Proxy(store, {
      get(target, prop) {
        if (prop === 'get') return get;
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return {
      store: held,
      seen,
      hold() {
        gate = new Promise<void>((resolve) => {
          open = resolve;
        });
      },
      release: () => open(),
    };
  }

  /** Nothing is cached until the invalidation subscription is up (epoch 0): wait for it, as a busy start-up may not have it yet. */
  const subscribed = (store: Store) => waitUntil(() => store.subscriptionEpoch() !== 0, 5000, 'the subscription');

  async function sessionsOn(store: Store): Promise<SessionManager> {
    const sessions = createSessionManager({ store, log, idleTtlSeconds: 3600, maxAgeSeconds: 86_400 });
    await sessions.start();
    await subscribed(store);
    return sessions;
  }

  async function blocklistOn(store: Store): Promise<Blocklist> {
    const blocklist = createBlocklist({ store, log });
    await blocklist.start();
    await subscribed(store);
    return blocklist;
  }

  it("a session destroyed on A while B reads it is not served from B's cache afterwards", async () => {
    const a = await sessionsOn(await redisStore());
    const { secret: id, session } = await a.create({ claims: { sub: 'ida' }, tokens: { accessToken: 'at-1' } });
    const b = withHeldGets(await redisStore(), () => session.storeKey);
    const onB = await sessionsOn(b.store);
    const invalidated: string[] = [];
    onB.onInvalidate((key) => invalidated.push(key));

    b.hold();
    const reading = onB.load(id);
    await waitUntil(() => b.seen.count === 1, 5000, 'B to start its read');
    await a.destroy(session.storeKey);
    await waitUntil(() => invalidated.includes(session.storeKey), 5000, 'the invalidation to reach B');
    b.release();
    // The request that started before the logout may finish with it; nothing after it may.
    expect((await reading)?.storeKey).toBe(session.storeKey);
    expect(onB.peek(id)).toBeUndefined();
    expect(await onB.load(id)).toBeUndefined();
  });

  it('concurrent misses for one session on B share one store read', async () => {
    const a = await sessionsOn(await redisStore());
    const { secret: id, session } = await a.create({ claims: { sub: 'bo' }, tokens: { accessToken: 'at-2' } });
    const b = withHeldGets(await redisStore(), () => session.storeKey);
    const onB = await sessionsOn(b.store);
    b.hold();
    const loads = Array.from({ length: 20 }, () => onB.load(id));
    await waitUntil(() => b.seen.count >= 1, 5000, 'B to start its read');
    b.release();
    const results = await Promise.all(loads);
    expect(results.every((s) => s?.storeKey === session.storeKey)).toBe(true);
    expect(b.seen.count).toBe(1);
    expect(onB.peek(id)?.storeKey).toBe(session.storeKey);
  });

  it('a session revoked on A while B reads the blocklist entry stays revoked on B', async () => {
    const key = `sess-${randomUUID()}`;
    const a = await blocklistOn(await redisStore());
    const b = withHeldGets(await redisStore(), () => `s:${key}`);
    const onB = await blocklistOn(b.store);

    b.hold();
    const checking = onB.isSessionRevoked(key);
    await waitUntil(() => b.seen.count === 1, 5000, 'B to start its read');
    await a.revokeSession(key, Date.now() + 60_000);
    await waitUntil(() => onB.cached('s', key) === 1, 5000, 'the revocation to reach B');
    b.release();
    // The read saw "not revoked" before the revocation; the revocation is newer and must win.
    expect(await checking).toBe(true);
    expect(onB.cached('s', key)).toBe(1);
    expect(await onB.isSessionRevoked(key)).toBe(true);
  });

  it('concurrent blocklist misses on B share one store read', async () => {
    const jti = `jti-${randomUUID()}`;
    const b = withHeldGets(await redisStore(), () => `j:${jti}`);
    const onB = await blocklistOn(b.store);
    b.hold();
    const checks = Array.from({ length: 20 }, () => onB.isJtiRevoked(jti));
    await waitUntil(() => b.seen.count >= 1, 5000, 'B to start its read');
    b.release();
    expect(await Promise.all(checks)).toEqual(Array.from({ length: 20 }, () => false));
    expect(b.seen.count).toBe(1);
    expect(onB.cached('j', jti)).toBe(0);
  });
});
