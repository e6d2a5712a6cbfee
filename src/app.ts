import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createConfigState, type ConfigState, type LoadRouting } from './admin/config-state.ts';
import { createAdminRoutes } from './admin/routes.ts';
import { createBackchannelLogout } from './auth/backchannel.ts';
import { createBearerVerifier } from './auth/bearer.ts';
import { createIdentityResolver } from './auth/identity.ts';
import { createIssuerKeys } from './auth/jwks.ts';
import { createLoginFlow } from './auth/login.ts';
import { createTokenRefresher } from './auth/refresh.ts';
import { createOidcClient, refreshCallTimeoutSeconds, type OidcClient } from './auth/oidc.ts';
import type { Config } from './config/types.ts';
import { GatehouseError, refuseUpgrade } from './errors.ts';
import { createReadiness } from './health/readiness.ts';
import { createClientErrorHandler } from './http/client-error.ts';
import { createExpressApp, type Mount } from './http/express-app.ts';
import { createMetricsServer } from './http/metrics-server.ts';
import { createDrain } from './http/drain.ts';
import { createPipelining } from './http/pipelining.ts';
import { createAccessLog } from './observability/access-log.ts';
import { requestIdFrom, type Logger } from './observability/logger.ts';
import { createMetrics, createNoMetrics, type Metrics } from './observability/metrics.ts';
import { createOutageLog } from './observability/outage-log.ts';
import { createNoTracing, type Tracing } from './observability/tracing.ts';
import { createAdmission } from './policy/admit.ts';
import { createRateLimiter } from './policy/rate-limit.ts';
import { compilePolicy } from './policy/runtime.ts';
import { createBackends, type Backends } from './proxy/backends/registry.ts';
import { createEventStreams } from './proxy/forward.ts';
import { createHttpProxy } from './proxy/http-handler.ts';
import { createRuntime, type Runtime } from './proxy/runtime.ts';
import { createBlocklist, type Blocklist } from './revocation/blocklist.ts';
import { createUpgradeHandler, createWsRegistry, type WsRegistry } from './proxy/websocket.ts';
import { createSessionManager, type SessionManager } from './session/sessions.ts';
import { observeAnswers } from './store/answers.ts';
import { createMemoryStore } from './store/memory.ts';
import { measureStore } from './store/measured.ts';
import { createRedisStore } from './store/redis.ts';
import type { Store } from './store/store.ts';

export interface AppDeps {
  readonly log: Logger;
  /** A store the caller owns (tests share one); otherwise built from config.redis. */
  readonly store?: Store;
  readonly mounts?: readonly Mount[];
  readonly now?: () => number;
  /**
   * config.yml as the cluster's shared, versioned state (/admin/config, file watch, replicas following each other):
   * the file's path, the text the config was loaded from, and how to validate a text as start-up does.
   */
  readonly configFile?: { readonly path: string; readonly text: string; readonly load: LoadRouting };
  /** Backend health checks and notifications: replica id and retry pacing (tests shorten it). */
  readonly backends?: { readonly replica?: string; readonly notifyRetryBaseMs?: number };
  /** OpenTelemetry spans (observability/tracing.ts createTracing, started by main.ts from OTEL_*), flushed and stopped by close(); none by default. */
  readonly tracing?: Tracing;
}

export interface App {
  readonly server: Server;
  readonly store: Store;
  readonly sessions: SessionManager;
  readonly oidc: OidcClient;
  readonly websockets: WsRegistry;
  readonly blocklist: Blocklist;
  /** config.yml as shared state, when AppDeps.configFile was given (SIGHUP goes through it). */
  readonly configState: ConfigState | undefined;
  /** Health checks and circuits per backend; `backends.snapshot()` is what GET /admin/health shows. */
  readonly backends: Pick<Backends, 'snapshot'>;
  readonly metrics: Metrics;
  /** The METRICS_PORT listener, once listen() has started it. */
  metricsAddress(): AddressInfo | undefined;
  runtime(): Runtime;
  /**
   * Applies a new configuration's routing (mappings, defaultBackend, allowedOrigins) without a restart:
   * requests from now on use it, requests under way finish with the one they started with, and the
   * previous backend pools close once those are done (the returned promise). Other settings need a restart.
   */
  reload(next: Config): Promise<void>;
  listen(port: number, host: string): Promise<AddressInfo>;
  /**
   * The first step of a shutdown, taken by SIGTERM before the delay (SHUTDOWN_DELAY_SECONDS): /readyz answers 503
   * from now on and every response says `Connection: close`, while new connections are still served.
   */
  beginShutdown(): void;
  /**
   * Begins the shutdown if it has not begun, stops accepting, closes WebSockets (1001), lets in-flight requests
   * finish up to the deadline (each response saying `Connection: close`), ends event streams still open then
   * with their last chunk, closes the connections left, then closes pools and the store.
   */
  close(): Promise<void>;
}

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

function refuseConnect(req: IncomingMessage, socket: Duplex, log: Logger): void {
  const id = requestIdFrom(req.headers['x-request-id']);
  // The target of a CONNECT is host:port (authority-form), which names no path and may be anything: kept out of the log.
  log.info({ reqId: id, method: 'CONNECT', status: 405, code: 'method_not_allowed' }, 'request');
  refuseUpgrade(socket, new GatehouseError('method_not_allowed', { headers: ['Allow', ALLOWED_METHODS] }), id);
}

function isApi(url: string | undefined): boolean {
  return url !== undefined && url.startsWith('/api') && (url.length === 4 || url[4] === '/' || url[4] === '?');
}

/** The composition root: every part is built here from the config and the injected dependencies. */
export async function createApp(config: Config, deps: AppDeps): Promise<App> {
  const { log } = deps;
  // First: a route rule that does not compile is a config error, thrown before any connection is opened.
  compilePolicy(config);
  const ownsStore = deps.store === undefined;
  let store: Store;
  if (deps.store) store = deps.store;
  else if (config.redis.url) {
    const redis = createRedisStore({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, log });
    // Five silent seconds read as a hang: say what is awaited, once it is clear the answer is not immediate.
    if (!(await redis.ready(250))) {
      const where = URL.canParse(config.redis.url) ? new URL(config.redis.url).host : 'REDIS_URL';
      log.info(`waiting for Redis at ${where} (REDIS_URL)…`);
    }
    if (!(await redis.ready(4750)))
      log.error('redis is not reachable yet; /readyz reports it and requests needing sessions answer 503 until it is');
    store = redis;
  } else {
    log.warn('REDIS_URL is not set: sessions live in this process only, are lost on restart and are not shared between replicas');
    store = createMemoryStore();
  }
  const outages = createOutageLog(log);
  // Every part gets the store through observeAnswers: the first command that resolves after a Redis outage ends it in the log.
  store = observeAnswers(store, () => outages.succeeded('redis'));
  // Nothing is counted when nothing could read it (neither METRICS_PORT nor ADMIN_TOKEN): the bench's baseline.
  const metrics = config.metrics.enabled ? createMetrics() : createNoMetrics();
  const tracing = deps.tracing ?? createNoTracing();
  if (metrics.enabled) store = measureStore(store, metrics);

  const sessions = createSessionManager({
    store,
    log,
    idleTtlSeconds: config.session.idleTtlSeconds,
    maxAgeSeconds: config.session.maxAgeSeconds,
    ...(deps.now ? { now: deps.now } : {}),
  });
  await sessions.start();
  const oidcClient = createOidcClient(config.oidc, log, metrics.enabled ? metrics : undefined);
  const oidc: OidcClient = tracing.enabled
    ? { ...oidcClient, refreshGrant: (token) => tracing.span('gatehouse.refresh', () => oidcClient.refreshGrant(token)) }
    : oidcClient;
  const now = deps.now ?? Date.now;
  const blocklist = createBlocklist({ store, log, now, metrics });
  await blocklist.start();
  const login = createLoginFlow({ oidc, store, sessions, blocklist, config: config.oidc, log, now });
  const refresher = createTokenRefresher({
    oidc,
    sessions,
    store,
    log,
    now,
    skewSeconds: config.oidc.refreshSkewSeconds,
    waitTimeoutMs: config.oidc.httpTimeoutSeconds * 1000,
    callLimitMs: refreshCallTimeoutSeconds(config.oidc.httpTimeoutSeconds) * 1000,
    metrics,
  });
  await refresher.start();
  const issuerKeys = createIssuerKeys(oidc);
  const bearer = config.bearer
    ? createBearerVerifier({
        keys: issuerKeys,
        issuer: config.oidc.issuer,
        audience: config.bearer.audience,
        algorithms: config.bearer.algorithms,
        clockToleranceSeconds: config.bearer.clockToleranceSeconds,
        blocklist,
        now,
      })
    : undefined;
  const resolver = createIdentityResolver({ sessions, refresher, blocklist, bearer });
  // Only the uncached path is a span: a cached session is answered without an await, and without a span.
  const identity = tracing.enabled
    ? {
        ...resolver,
        resolve: (...a: Parameters<typeof resolver.resolve>) => tracing.span('gatehouse.session_lookup', () => resolver.resolve(...a)),
      }
    : resolver;
  const backchannelLogout = createBackchannelLogout({
    keys: issuerKeys,
    issuer: config.oidc.issuer,
    clientId: config.oidc.clientId,
    algorithm: config.oidc.idTokenSigningAlg,
    sessions,
    store,
    log,
    now,
  });
  let shuttingDown = false;
  const readiness = createReadiness({ store, idpReady: oidc.isReady, idpRefresh: refresher.health, shuttingDown: () => shuttingDown });
  const backends = createBackends({
    log,
    store,
    notify: config.notify,
    now,
    states: metrics,
    ...(deps.backends?.replica !== undefined ? { replica: deps.backends.replica } : {}),
    ...(deps.backends?.notifyRetryBaseMs !== undefined ? { notifyRetryBaseMs: deps.backends.notifyRetryBaseMs } : {}),
  });
  let runtime = createRuntime(config, backends);
  const websockets = createWsRegistry();
  // Revocations arrive on every replica (pub/sub); the WebSockets opened with what was revoked end with them.
  blocklist.onRevoke((r) => {
    if (r.kind === 'session') websockets.closeSession(r.key, 1008, 'session revoked');
    else if (r.kind === 'jti') websockets.closeWhere((c) => c.tokenJti === r.jti, 1008, 'token revoked');
    else websockets.closeWhere((c) => c.sub === r.sub && (c.issuedAt ?? 0) < r.notBefore, 1008, 'user revoked');
  });
  sessions.onInvalidate((key, kind) => {
    if (kind === 'destroyed') websockets.closeSession(key, 1008, 'session ended');
  });

  const reload = async (next: Config): Promise<void> => {
    const previous = runtime;
    // Only the routing comes from config.yml; the environment of a running process cannot change.
    runtime = createRuntime(Object.freeze({ ...config, routing: next.routing }), backends);
    await previous.close();
  };
  const configState = deps.configFile
    ? createConfigState({
        store,
        log,
        initial: config,
        initialText: deps.configFile.text,
        path: deps.configFile.path,
        load: deps.configFile.load,
        apply: reload,
        now,
      })
    : undefined;
  // Before the listener opens: a replica started after a change serves the cluster's version from its first request.
  await configState?.start();

  // One limiter for /api (admission) and /auth (Express): counts in the store, so every replica shares them.
  const limiter = createRateLimiter({ counter: store.rates, outages });
  metrics.gauge('rate_limit_failed_open', () => limiter.failedOpen());
  const admit = createAdmission(identity, limiter);
  const streams = createEventStreams();
  metrics.gauge('websockets', () => websockets.size());
  metrics.gauge('event_streams', () => streams.count());
  const proxy = createHttpProxy({ runtime: () => runtime, admit, log, outages, access: createAccessLog(log), streams, metrics, tracing });
  const upgrade = createUpgradeHandler({ runtime: () => runtime, admit, sessions, log, outages, registry: websockets, now, metrics });
  const metricsServer = config.metrics.port !== undefined ? createMetricsServer(metrics, log) : undefined;
  const express = createExpressApp({
    config,
    log,
    outages,
    login,
    sessions,
    readiness,
    backchannelLogout,
    limiter,
    ...(config.adminToken || configState || config.routing.admin?.requireClaims
      ? {
          adminRoutes: createAdminRoutes({
            adminToken: config.adminToken,
            operators: {
              identity,
              cookieName: config.session.cookieName,
              selfOrigin: config.server.origin,
              requireClaims: () => (configState ? configState.routing() : config.routing).admin?.requireClaims,
            },
            sessions,
            blocklist,
            maxSessionAgeMs: config.session.maxAgeSeconds * 1000,
            log,
            ...(configState ? { configState } : {}),
            readiness: () => readiness.check(),
            health: () => backends.snapshot(),
            now,
          }),
        }
      : {}),
    runtime: () => runtime,
    ...(deps.mounts ? { mounts: deps.mounts } : {}),
    metrics,
  });

  const requestTimeoutMs = config.server.requestTimeoutMs;
  const server = createServer(
    // requireHostHeader off: a request without Host gets Gatehouse's JSON invalid_host instead of Node's bare 400.
    {
      // Node refuses a head timeout longer than the request timeout (a RangeError at start-up), and checks both
      // only every connectionsCheckingInterval (30 s by default): a short limit gets a shorter look.
      headersTimeout: requestTimeoutMs > 0 ? Math.min(20_000, requestTimeoutMs) : 20_000,
      requestTimeout: requestTimeoutMs,
      connectionsCheckingInterval: requestTimeoutMs > 0 ? Math.min(30_000, Math.max(250, requestTimeoutMs / 4)) : 30_000,
      keepAliveTimeout: 5_000,
      maxHeaderSize: 16_384,
      requireHostHeader: false,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      if (drain.draining) drain.respond(req, res);
      // Not processed, not answered: node:http closes the connection once the response before it is out.
      if (pipelining.closing(req)) return;
      pipelining.track(req, res);
      if (isApi(req.url)) proxy(req, res);
      else express(req, res);
    },
  );
  const pipelining = createPipelining(server);
  server.on('clientError', createClientErrorHandler(log, metrics, pipelining));
  const drain = createDrain(server, pipelining);
  // An upgrade or CONNECT behind responses still owed on its connection would be answered before them: the client's
  // connection is out of step, so it is closed without an answer (the earlier responses are lost with it).
  const outOfStep = (req: IncomingMessage, socket: Duplex): boolean => {
    if (pipelining.owed(req.socket) === 0) return false;
    socket.destroy();
    return true;
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    drain.detach(req.socket);
    // WebSockets were closed with 1001 when the drain began; one opened after would outlive it.
    if (closing !== undefined) {
      refuseUpgrade(socket, new GatehouseError('shutting_down'));
      return;
    }
    if (outOfStep(req, socket)) return;
    upgrade(req, socket, head);
  });
  // Without a 'connect' listener node:http drops a CONNECT without a word; Gatehouse tunnels nothing, so it
  // answers 405 like any other refused method (RFC 9110 §9.3.6 lets a server refuse to establish a tunnel).
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    if (!outOfStep(req, socket)) refuseConnect(req, socket, log);
  });

  const beginShutdown = () => {
    shuttingDown = true;
    drain.begin();
  };
  let closing: Promise<void> | undefined;
  return {
    server,
    store,
    sessions,
    oidc,
    websockets,
    blocklist,
    backends,
    metrics,
    metricsAddress: () => (metricsServer?.listening ? (metricsServer.address() as AddressInfo) : undefined),
    runtime: () => runtime,
    configState,
    reload,
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      if (metricsServer && config.metrics.port !== undefined) {
        const metricsPort = config.metrics.port;
        await new Promise<void>((resolve, reject) => {
          metricsServer.once('error', reject);
          metricsServer.listen(metricsPort, config.metrics.host, () => {
            metricsServer.off('error', reject);
            resolve();
          });
        });
      }
      oidc.start();
      return server.address() as AddressInfo;
    },
    beginShutdown,
    close() {
      closing ??= (async () => {
        beginShutdown();
        const drained = drain.stopAccepting();
        websockets.closeAll(1001, 'server shutting down');
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.server.shutdownTimeoutMs).unref());
        // A refresh still running may already have rotated the refresh token at the IdP: give it the same deadline.
        await Promise.race([Promise.all([drained, refresher.settled()]), deadline]);
        await streams.endAll(250);
        drain.end();
        oidc.close();
        configState?.close();
        await backends.close();
        await runtime.close();
        // Scrapes go on through the drain (what it did is worth seeing); the metrics listener closes last.
        if (metricsServer?.listening) await new Promise<void>((resolve) => metricsServer.close(() => resolve()).closeAllConnections());
        await tracing.close();
        if (ownsStore) await store.close();
      })();
      return closing;
    },
  };
}
