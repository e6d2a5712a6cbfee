import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { reservePort, startGatehouse, type TestGatehouse } from './gatehouse.ts';
import { startAll, useStarted, type StartedAll, type Starters } from './hooks.ts';
import { startIdp, type TestIdp } from './idp.ts';
import { startRedis, type RedisServer } from './redis.ts';
import { redisClient } from './token-kit.ts';

type GatehouseOptions = Omit<Parameters<typeof startGatehouse>[0], 'idp' | 'port'>;

/**
 * One more Gatehouse on the stage's IdP, with the first one's `redisUrl` and `yaml` unless given (`env`, `now`
 * and the rest are its own). `ownClient` registers it as a client of its own (`<clientId>-<n>`, its URL a
 * redirect URI, so it can log users in); without it, it shares the first one's client on a port of its own.
 */
export type MoreGatehouse = GatehouseOptions & { ownClient?: boolean };

export interface Stage<M extends string = never> {
  readonly idp: TestIdp;
  readonly gh: TestGatehouse;
  /** The `more` Gatehouses, by name. */
  readonly more: Readonly<Record<M, TestGatehouse>>;
  close(): Promise<void>;
}

/**
 * A test port is found free and then bound later, so a parallel test file's listen(0) can take it in
 * between: retry on EADDRINUSE (start() picks a fresh port each time).
 */
export async function retryOnPortRace<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

/**
 * A real IdP and one Gatehouse registered with it (plus the `more` ones). The IdP's redirect URIs must name
 * Gatehouse's ports before Gatehouse listens, so a port race means fresh ports and a fresh IdP.
 */
export function startStage<M extends string = never>(
  options: {
    idp?: Omit<Parameters<typeof startIdp>[0], 'gatehouseBaseUrls'>;
    gatehouse?: GatehouseOptions;
    more?: Readonly<Record<M, MoreGatehouse>>;
  } = {},
): Promise<Stage<M>> {
  return retryOnPortRace(async () => {
    const more = Object.entries(options.more ?? {}) as Array<[M, MoreGatehouse]>;
    const main = await reservePort();
    const own = new Map<M, { port: number; url: string; clientIndex: number }>();
    for (const [name, o] of more) if (o.ownClient) own.set(name, { ...(await reservePort()), clientIndex: own.size + 1 });
    const idp = await startIdp({ ...options.idp, gatehouseBaseUrls: [main.url, ...[...own.values()].map((o) => o.url)] });
    const started: TestGatehouse[] = [];
    const close = async () => {
      await Promise.all(started.map((g) => g.close()));
      await idp.close();
    };
    try {
      const gh = await startGatehouse({ ...options.gatehouse, idp, port: main.port });
      started.push(gh);
      const others = {} as Record<M, TestGatehouse>;
      for (const [name, { ownClient: _, ...o }] of more) {
        const client = own.get(name);
        const inherited = { redisUrl: options.gatehouse?.redisUrl, yaml: options.gatehouse?.yaml };
        others[name] = await startGatehouse({
          ...inherited,
          ...o,
          idp,
          ...(client ? { port: client.port, clientId: `${idp.clientId}-${client.clientIndex}` } : {}),
        });
        started.push(others[name]);
      }
      return { idp, gh, more: others, close };
    } catch (err) {
      await close();
      throw err;
    }
  });
}

/** What `useStage` starts: a `Stage` and the backends behind it, and a Redis client on the stage's Redis. */
export interface UsedStage<M extends string, S extends Starters> extends Omit<Stage<M>, 'close'> {
  readonly backends: StartedAll<S>;
  /** A test's own connection to the Redis the stage uses, made on first use. */
  readonly redis: Redis;
  /** The stage's own redis-server, with `ownRedis`. */
  readonly redisServer: RedisServer;
}

export interface StageOptions<M extends string, S extends Starters> {
  idp?: Omit<Parameters<typeof startIdp>[0], 'gatehouseBaseUrls'>;
  gatehouse?: Omit<GatehouseOptions, 'yaml'>;
  more?: Readonly<Record<M, MoreGatehouse>>;
  backends?: S;
  yaml?: (backends: StartedAll<S>) => string;
  ownRedis?: boolean;
}

/**
 * Registers beforeAll/afterAll for a file's describe block: starts the `backends` (in order), then a `Stage`
 * whose config.yml `yaml` builds from them, on the shared test Redis (or, with `ownRedis`, a redis-server of
 * its own, for tests that stop or pause it), and closes it all afterwards. `options` may be a function, read
 * in beforeAll, when it needs what an earlier hook made (a signing key). The fields can be read from
 * beforeAll on.
 */
export function useStage<M extends string = never, S extends Starters = Record<never, never>>(
  optionsOrThunk: StageOptions<M, S> | (() => StageOptions<M, S>) = {},
): UsedStage<M, S> {
  let client: Redis | undefined;
  const get = useStarted('useStage', async () => {
    const options = typeof optionsOrThunk === 'function' ? optionsOrThunk() : optionsOrThunk;
    const redisServer = options.ownRedis ? await startRedis() : undefined;
    const redisUrl = redisServer?.url ?? inject('redisUrl');
    const backends = await startAll(options.backends ?? ({} as S));
    let stage: Stage<M>;
    try {
      const yaml = options.yaml?.(backends);
      stage = await startStage({
        ...(options.idp ? { idp: options.idp } : {}),
        ...(options.more ? { more: options.more } : {}),
        gatehouse: { redisUrl, ...options.gatehouse, ...(yaml === undefined ? {} : { yaml }) },
      });
    } catch (err) {
      await backends.close();
      await redisServer?.stop();
      throw err;
    }
    return {
      stage,
      backends,
      redisServer,
      redisUrl,
      async close() {
        client?.disconnect();
        await stage.close();
        await backends.close();
        await redisServer?.stop();
      },
    };
  });
  return {
    get idp() {
      return get().stage.idp;
    },
    get gh() {
      return get().stage.gh;
    },
    get more() {
      return get().stage.more;
    },
    get backends() {
      return get().backends;
    },
    get redis() {
      return (client ??= redisClient(get().redisUrl));
    },
    get redisServer() {
      const server = get().redisServer;
      if (!server) throw new Error('useStage: redisServer needs ownRedis');
      return server;
    },
  };
}
