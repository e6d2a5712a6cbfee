import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename } from 'node:path';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import type { LoginFlow } from '../auth/login.ts';
import type { Config } from '../config/types.ts';
import { asGatehouseError, GatehouseError, sendError } from '../errors.ts';
import { createAdminGuard } from '../admin/auth.ts';
import type { Readiness } from '../health/readiness.ts';
import type { Metrics } from '../observability/metrics.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { OutageLog } from '../observability/outage-log.ts';
import { createRequestContext, type RequestContext } from '../policy/context.ts';
import { MAX_URL_LENGTH } from '../policy/path.ts';
import { clientKey, type RateLimiter } from '../policy/rate-limit.ts';
import type { PolicyRuntime } from '../policy/runtime.ts';
import type { SessionManager } from '../session/sessions.ts';
import { createAuthRoutes } from './auth-routes.ts';
import { isNavigation, renderErrorPage } from './error-page.ts';
import { serveMetrics } from './metrics-server.ts';

export interface Mount {
  readonly path: string;
  readonly handler: RequestHandler | ((req: IncomingMessage, res: ServerResponse) => void);
}

export interface ExpressDeps {
  readonly config: Config;
  readonly log: Logger;
  /** Where Redis and IdP failures go: one line per outage interval, not one per failed request. */
  readonly outages: OutageLog;
  readonly login: LoginFlow;
  readonly sessions: SessionManager;
  readonly readiness: Readiness;
  /** The current config snapshot (origins, trusted proxies); each request keeps the one it started with. */
  readonly runtime: () => PolicyRuntime;
  /** Extra handlers mounted before security headers (the dev IdP's pages, which set their own). */
  readonly mounts?: readonly Mount[];
  readonly adminRoutes?: express.Router;
  readonly backchannelLogout: (logoutToken: unknown) => Promise<number>;
  /** The rate limiter admission uses too: /auth/* is counted per client IP against the runtime's authLimit. */
  readonly limiter: RateLimiter;
  /** Counts error answers and auth events; served at /metrics here when config.metrics says the main port (no METRICS_PORT). */
  readonly metrics: Metrics;
}

const RESERVED = /^\/(api|auth|admin)(\/|$)/;

/**
 * The path a request was sent to, for its log line: the original URL (req.path is relative to the router or mount
 * handling it, which drops /dev-idp or /admin), never the query (codes, state and tokens travel there). An
 * absolute-form target (RFC 9112 §3.2.2) may carry userinfo: only its path is kept.
 */
function pathOf(originalUrl: string): string {
  if (originalUrl.startsWith('/')) {
    // A fragment is never sent by a browser, but a client may put anything there: cut at it as at the query.
    const end = originalUrl.search(/[?#]/);
    return end === -1 ? originalUrl : originalUrl.slice(0, end);
  }
  try {
    return new URL(originalUrl).pathname;
  } catch {
    return '-';
  }
}

/**
 * A file name carrying a content hash (`index-D8xF2k1Q.js`, `main.3f9a1c2b.css`): at least eight characters of
 * base64url after a dot or dash, one of them a digit, then the extension. Such a name changes whenever its
 * content does, so it may be cached for good; a name that only looks like one (`app-settings.js` has no digit)
 * falls back to revalidation, the safe side.
 */
const HASHED_ASSET = /[.-](?=[A-Za-z0-9_]*\d)[A-Za-z0-9_]{8,}\.[A-Za-z0-9]+$/;

/** index.html and unhashed files are revalidated on every use; hashed assets are immutable for a year. */
function setSpaCaching(res: ServerResponse, path: string): void {
  res.setHeader('cache-control', HASHED_ASSET.test(basename(path)) ? 'public, max-age=31536000, immutable' : 'no-cache');
}

/** Everything that is not /api/*: probes, /auth, /admin, and the SPA. */
export function createExpressApp(deps: ExpressDeps): express.Express {
  const { config, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', (ip: string, hop: number) => deps.runtime().trusts(ip, hop));
  app.set('etag', false);
  app.set('query parser', 'simple');

  // The request's context, set once by the first middleware: keyed by the request, never a property added to it.
  const contexts = new WeakMap<IncomingMessage, RequestContext>();
  const begin = (req: Request, res: Response): RequestContext => {
    const ctx = createRequestContext(requestIdFrom(req.headers['x-request-id']), log, deps.runtime(), Date.now());
    contexts.set(req, ctx);
    // req.ip from the walk /api and the rate limits use (policy/trust-proxy.ts): Express's own would keep a proxy's
    // `198.51.100.7:51234` entry whole, and that is what a session records and the admin audit line shows.
    const xff = req.headers['x-forwarded-for'];
    const client = ctx.runtime.trust(
      req.socket.remoteAddress ?? '',
      Array.isArray(xff) ? xff.join(', ') : xff,
      undefined,
      undefined,
      false,
    );
    Object.defineProperty(req, 'ip', { value: client.ip, enumerable: true });
    res.setHeader('x-request-id', ctx.id);
    res.on('finish', () => {
      const line = {
        reqId: ctx.id,
        method: req.method,
        path: pathOf(req.originalUrl),
        status: res.statusCode,
        ms: Date.now() - ctx.startedAt,
      };
      // One line per request: a refusal's code and detail ride on it rather than on a line of their own.
      if (ctx.error) log.info({ ...line, code: ctx.error.code, detail: ctx.error.logDetail }, 'request');
      else log.info(line, 'request');
    });
    return ctx;
  };
  app.use((req: Request, res: Response, next: NextFunction) => {
    begin(req, res);
    next();
  });

  for (const mount of deps.mounts ?? []) app.use(mount.path, mount.handler as RequestHandler);
  // Before every route of Gatehouse's own, so probes, /auth, the SPA, 404s and error answers all carry them
  // (the dev IdP's pages, mounted above, set their own).
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          'connect-src': ["'self'"],
          'form-action': ["'self'", new URL(config.oidc.issuer).origin],
          'upgrade-insecure-requests': config.server.baseUrl.startsWith('https:') ? [] : null,
        },
      },
      strictTransportSecurity: config.server.baseUrl.startsWith('https:'),
    }),
  );

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(
      req.originalUrl.length > MAX_URL_LENGTH
        ? new GatehouseError('uri_too_long', { logDetail: `${req.originalUrl.length} characters` })
        : undefined,
    );
  });

  app.get('/healthz', (_req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.json({ ok: true });
  });
  app.get('/readyz', async (_req, res) => {
    const report = await deps.readiness.check();
    res.setHeader('cache-control', 'no-store');
    if (report.ok) {
      res.json({ ok: true, checks: report.checks, ...(report.details ? { details: report.details } : {}) });
      return;
    }
    const failed = Object.entries(report.checks)
      .filter(([, v]) => v === 'fail')
      .map(([k]) => k);
    res.status(503).json({
      ok: false,
      error: 'not_ready',
      failed,
      checks: report.checks,
      ...(report.details ? { details: report.details } : {}),
      ...(report.reason ? { reason: report.reason } : {}),
    });
  });

  // Per client IP, before any login work (a transaction record, an IdP call): a login or callback flood stops here.
  // The back-channel logout is the IdP calling, with a signed token; a per-IP limit on it could drop a logout.
  app.use(['/auth', config.oidc.redirectPath], (req: Request, res: Response, next: NextFunction) => {
    const ctx = contexts.get(req) ?? begin(req, res);
    const limit = ctx.runtime.authLimit;
    if (limit === undefined || pathOf(req.originalUrl).toLowerCase() === '/auth/backchannel-logout') return next();
    const pass = (fields: readonly string[] | undefined) => {
      if (fields) for (let i = 0; i < fields.length; i += 2) res.setHeader(fields[i] as string, fields[i + 1] as string);
      next();
    };
    let fields: ReturnType<RateLimiter['check']>;
    try {
      fields = deps.limiter.check(limit, clientKey(req.ip ?? ''), ctx.id);
    } catch (err) {
      return next(err);
    }
    if (fields instanceof Promise) fields.then(pass, next);
    else pass(fields);
  });

  app.use(
    createAuthRoutes({
      config,
      login: deps.login,
      sessions: deps.sessions,
      origins: () => deps.runtime().origins,
      backchannelLogout: deps.backchannelLogout,
      idpAnswered: () => deps.outages.succeeded('idp'),
      metrics: deps.metrics,
    }),
  );
  if (deps.adminRoutes) app.use('/admin', deps.adminRoutes);
  // Without METRICS_PORT, /metrics shares the main port, so it takes the admin credentials; without ADMIN_TOKEN either,
  // it does not exist.
  if (config.metrics.port === undefined && config.adminToken !== undefined) {
    const metrics = deps.metrics;
    app.get('/metrics', createAdminGuard({ adminToken: config.adminToken }), (req: Request, res: Response) =>
      serveMetrics(metrics, req.method, res),
    );
  }

  const publicDir = config.server.publicDir;
  if (publicDir !== undefined) {
    // redirect:false: no directory redirects, so //evil.example/.. can never become a Location header.
    app.use(express.static(publicDir, { redirect: false, index: 'index.html', dotfiles: 'ignore', setHeaders: setSpaCaching }));
    app.use((req: Request, res: Response, next: NextFunction) => {
      // Only navigations (Accept names text/html) get the SPA shell; a missing asset stays a 404.
      if ((req.method === 'GET' || req.method === 'HEAD') && !RESERVED.test(req.path) && (req.headers.accept ?? '').includes('text/html')) {
        res.sendFile('index.html', { root: publicDir, headers: { 'cache-control': 'no-cache' } });
        return;
      }
      next();
    });
  }

  app.use(() => {
    throw new GatehouseError('not_found');
  });
  // A login that fails in the browser (bad state, IdP error) is a page the user looks at: it gets HTML with "Log in
  // again"; fetch/XHR callers of the same paths keep the JSON they parse.
  const errorPage = renderErrorPage(config.server.baseUrl);
  const isAuthPath = (path: string) => path === config.oidc.redirectPath || path === '/auth' || path.startsWith('/auth/');
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const ctx = contexts.get(req) ?? begin(req, res);
    // body-parser / static errors carry their own 4xx status; anything else unknown is a 500 with the cause logged.
    const mapped = asGatehouseError(err);
    ctx.error = mapped;
    deps.metrics.errorResponse(mapped.code, mapped.status);
    // The cause goes to the log now: a response that cannot be sent (headers already out) never reaches 'finish'.
    if (mapped.status >= 500 && !deps.outages.failed(mapped, ctx.id))
      log.error({ err, reqId: ctx.id, path: pathOf(req.originalUrl) }, 'request failed');
    sendError(res, mapped, ctx.id, isAuthPath(pathOf(req.originalUrl)) && isNavigation(req.headers) ? errorPage : undefined);
  });
  return app;
}
