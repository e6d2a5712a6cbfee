import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import { createLocks } from './lock.ts';
import { createRedisRateCounter } from './rate-counter.ts';
import type { Store } from './store.ts';

const CAS = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`;
const CAD = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const CAE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const SADD_TTL =
  `redis.call('SADD', KEYS[1], ARGV[1]) ` +
  `if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1`;

type ScriptedRedis = Redis & {
  ghCas(key: string, expected: string, next: string, ttl: number): Promise<number>;
  ghCad(key: string, expected: string): Promise<number>;
  ghSaddTtl(key: string, member: string, ttl: number): Promise<number>;
  ghCae(key: string, expected: string, ttl: number): Promise<number>;
};

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  log: Logger;
  /** Per-command timeout; a hung Redis must fail requests closed, not hold them forever. */
  commandTimeoutMs?: number;
}

/**
 * The Redis Store. Commands fail fast while disconnected (no offline queue): callers answer 503
 * instead of piling up requests, and ioredis keeps reconnecting in the background.
 */
export function createRedisStore(options: RedisStoreOptions): Store & { ready(timeoutMs: number): Promise<boolean> } {
  const base: RedisOptions = {
    keyPrefix: options.keyPrefix,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  };
  const client = new Redis(options.url, base) as ScriptedRedis;
  client.defineCommand('ghCas', { numberOfKeys: 1, lua: CAS });
  client.defineCommand('ghCad', { numberOfKeys: 1, lua: CAD });
  client.defineCommand('ghSaddTtl', { numberOfKeys: 1, lua: SADD_TTL });
  client.defineCommand('ghCae', { numberOfKeys: 1, lua: CAE });

  let lastError = '';
  client.on('error', (err: Error) => {
    if (err.message !== lastError) options.log.error({ err: { message: err.message } }, 'redis connection error');
    lastError = err.message;
  });
  client.on('ready', () => {
    if (lastError) options.log.info('redis connection restored');
    lastError = '';
  });

  // Subscriber mode needs its own connection; it queues commands so subscribe() works before it is ready.
  // No ready check: SUBSCRIBE may be written while the connection is still in its handshake, and the INFO of
  // the ready check would then be refused in subscriber mode, failing the subscribe (and start-up) at random.
  const subscriber = client.duplicate({ enableOfflineQueue: true, enableReadyCheck: false, commandTimeout: undefined, keyPrefix: '' });
  subscriber.on('error', () => undefined);
  const handlers = new Map<string, Array<(m: string) => void>>();
  let epoch = 0;
  let generation = 0;
  subscriber.on('ready', () => {
    // ioredis resubscribes on reconnect; messages sent while we were away are lost, so readers must treat caches as stale.
    generation += 1;
    epoch = generation;
  });
  subscriber.on('close', () => {
    epoch = 0;
  });
  subscriber.on('message', (channel: string, message: string) => {
    for (const h of handlers.get(channel) ?? []) h(message);
  });
  const channelName = (c: string) => options.keyPrefix + c;

  const setIfAbsent = async (key: string, value: string, ttlMs: number) =>
    (await client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
  const locks = createLocks({
    setIfAbsent,
    compareAndDelete: async (key, expected) => (await client.ghCad(key, expected)) === 1,
    compareAndExpire: async (key, expected, ttlMs) => (await client.ghCae(key, expected, Math.max(1, Math.ceil(ttlMs)))) === 1,
    exists: async (key) => (await client.exists(key)) === 1,
  });

  return {
    kind: 'redis',
    ...locks,
    rates: createRedisRateCounter(client),
    async ready(timeoutMs) {
      if (client.status === 'ready') return true;
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        client.once('ready', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
    get: (key) => client.get(key),
    async set(key, value, ttlMs) {
      await client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
    },
    setIfAbsent,
    take: (key) => client.getdel(key),
    del: (...keys) => client.del(...keys),
    async compareAndSet(key, expected, next, ttlMs) {
      return (await client.ghCas(key, expected, next, Math.max(1, Math.ceil(ttlMs)))) === 1;
    },
    async setAdd(key, member, ttlMs) {
      await client.ghSaddTtl(key, member, Math.max(1, Math.ceil(ttlMs)));
    },
    setMembers: (key) => client.smembers(key),
    async publish(channel, message) {
      await client.publish(channelName(channel), message);
    },
    async subscribe(channel, handler) {
      const name = channelName(channel);
      const existing = handlers.get(name);
      handlers.set(name, [...(existing ?? []), handler]);
      // Not awaited: with Redis down at start-up the SUBSCRIBE waits in the queue and goes out on connect,
      // while the app starts and reports not-ready instead of hanging.
      if (!existing) subscriber.subscribe(name).catch((err: unknown) => options.log.error({ err }, 'redis subscribe failed'));
    },
    subscriptionEpoch: () => (subscriber.status === 'ready' ? epoch : 0),
    async ping() {
      await client.ping();
    },
    async close() {
      await Promise.allSettled([client.quit(), subscriber.quit()]);
      client.disconnect();
      subscriber.disconnect();
    },
  };
}
