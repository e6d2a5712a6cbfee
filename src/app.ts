import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLoginFlow } from './auth/login.ts';
import { createOidcClient, type OidcClient } from './auth/oidc.ts';
import type { Config } from './config/types.ts';
import { createReadiness } from './health/readiness.ts';
import { createExpressApp, type Mount } from './http/express-app.ts';
import type { Logger } from './observability/logger.ts';
import { createHttpProxy } from './proxy/http-handler.ts';
import { createRuntime, type Runtime } from './proxy/runtime.ts';
import { createUpgradeHandler, createWsRegistry, type WsRegistry } from './proxy/websocket.ts';
import { createSessionManager, type SessionManager } from './session/sessions.ts';
import { createMemoryStore } from './store/memory.ts';
import { createRedisStore } from './store/redis.ts';
import type { Store } from './store/store.ts';

export interface AppDeps {
  readonly log: Logger;
  /** A store the caller owns (tests share one); otherwise built from config.redis. */
  readonly store?: Store;
  readonly mounts?: readonly Mount[];
  readonly publicDir?: string;
  readonly now?: () => number;
}

export interface App {
  readonly server: Server;
  readonly store: Store;
  readonly sessions: SessionManager;
  readonly oidc: OidcClient;
  readonly websockets: WsRegistry;
  runtime(): Runtime;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting, closes WebSockets (1001), drains in-flight requests up to the deadline, then closes pools and the store. */
  close(): Promise<void>;
}

function isApi(url: string | undefined): boolean {
  return url !== undefined && url.startsWith('/api') && (url.length === 4 || url[4] === '/' || url[4] === '?');
}

/** The composition root: every part is built here from the config and the injected dependencies. */
export async function createApp(config: Config, deps: AppDeps): Promise<App> {
  const { log } = deps;
  const ownsStore = deps.store === undefined;
  let store: Store;
  if (deps.store) store = deps.store;
  else if (config.redis.url) {
    const redis = createRedisStore({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, log });
    if (!(await redis.ready(5000))) log.error('redis is not reachable yet; /readyz reports it and requests needing sessions answer 503 until it is');
    store = redis;
  } else {
    log.warn('REDIS_URL is not set: sessions live in this process only, are lost on restart and are not shared between replicas');
    store = createMemoryStore();
  }

  const sessions = createSessionManager({
    store, log,
    idleTtlSeconds: config.session.idleTtlSeconds,
    maxAgeSeconds: config.session.maxAgeSeconds,
    ...(deps.now ? { now: deps.now } : {}),
  });
  await sessions.start();
  const oidc = createOidcClient(config.oidc, log);
  const login = createLoginFlow({ oidc, store, sessions, config: config.oidc, log, ...(deps.now ? { now: deps.now } : {}) });
  const readiness = createReadiness({ store, idpReady: oidc.isReady });
  const runtime = createRuntime(config);
  const websockets = createWsRegistry();
  sessions.onInvalidate((key) => websockets.closeSession(key, 1008, 'session ended'));

  const proxy = createHttpProxy({ runtime: () => runtime, sessions, log });
  const upgrade = createUpgradeHandler({ runtime: () => runtime, sessions, log, registry: websockets });
  const express = createExpressApp({
    config, log, login, sessions, readiness,
    origins: () => runtime.origins,
    trustProxy: (ip, hop) => runtime.trusts(ip, hop),
    ...(deps.mounts ? { mounts: deps.mounts } : {}),
    ...(deps.publicDir ? { publicDir: deps.publicDir } : {}),
  });

  const server = createServer(
    { headersTimeout: 20_000, requestTimeout: 300_000, keepAliveTimeout: 5_000, maxHeaderSize: 16_384 },
    (req: IncomingMessage, res: ServerResponse) => {
      if (isApi(req.url)) proxy(req, res);
      else express(req, res);
    },
  );
  server.on('upgrade', upgrade);

  let closing: Promise<void> | undefined;
  return {
    server,
    store,
    sessions,
    oidc,
    websockets,
    runtime: () => runtime,
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      oidc.start();
      return server.address() as AddressInfo;
    },
    close() {
      closing ??= (async () => {
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        websockets.closeAll(1001, 'server shutting down');
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.server.shutdownTimeoutMs).unref());
        await Promise.race([drained, deadline]);
        server.closeAllConnections();
        oidc.close();
        await runtime.close();
        if (ownsStore) await store.close();
      })();
      return closing;
    },
  };
}
