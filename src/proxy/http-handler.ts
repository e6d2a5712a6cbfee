import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { asGatehouseError, GatehouseError, sendError } from '../errors.ts';
import type { AccessLog } from '../observability/access-log.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { Admission, Admit } from '../policy/admit.ts';
import { forward } from './forward.ts';
import { buildUpstreamHeaders, createIdentityLinesMemo, scanHeaders, upstreamCookie } from './headers.ts';
import type { Runtime } from './runtime.ts';

export interface ProxyDeps {
  readonly runtime: () => Runtime;
  /** The admission pipeline (policy/admit.ts), with the identity resolver bound. */
  readonly admit: Admit;
  readonly log: Logger;
  readonly access: AccessLog;
}

/** /api/* over HTTP, outside Express: the hot path allocates little and awaits only the session lookup. */
export function createHttpProxy(deps: ProxyDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { admit, log, access } = deps;
  const identityLines = createIdentityLinesMemo(log);
  return (req, res) => {
    const started = Date.now();
    const rt = deps.runtime();
    const accessLog = rt.config.accessLog;
    const facts = scanHeaders(req.rawHeaders);
    const reqId = requestIdFrom(facts.requestId);
    const url = req.url ?? '/';
    let logged = false;
    const done = (status: number, route: string, detail?: string) => {
      if (logged) return;
      logged = true;
      if (accessLog === 'off' || (accessLog === 'errors' && status < 400 && status !== 0)) return;
      const q = url.indexOf('?');
      access({ reqId, method: req.method ?? 'GET', path: q === -1 ? url : url.slice(0, q), route, status, ms: Date.now() - started, detail });
    };
    const fail = (err: unknown, route: string) => {
      if (!res.headersSent) res.setHeader('x-request-id', reqId);
      const known = asGatehouseError(err);
      if (known.status >= 500) log.error({ reqId, err: known.cause ?? known, code: known.code, detail: known.logDetail }, 'proxy error');
      sendError(res, known, reqId);
      done(known.status, route, known.code);
    };
    if (facts.refusal !== undefined) {
      // Where this body ends is exactly what is in doubt: never read another request from this connection.
      res.setHeader('connection', 'close');
      return fail(new GatehouseError('bad_request', { logDetail: facts.refusal }), '-');
    }
    const proceed = (a: Admission) => {
      try {
        const lines = a.principal ? identityLines(a.route, a.principal, reqId) : undefined;
        const headers = buildUpstreamHeaders(facts, a.route, lines, a.client, a.hostHeader, reqId, upstreamCookie(rt, facts.cookie));
        forward(
          req,
          res,
          { pool: rt.pools.get(a.route.origin), method: req.method ?? 'GET', path: a.route.basePath + a.path + a.query, headers, framing: facts.framing, timeoutMs: a.route.timeoutMs, responseHeaders: a.responseHeaders ? ['x-request-id', reqId, ...a.responseHeaders] : ['x-request-id', reqId], ownCookies: rt.ownCookies },
          (err) => fail(err, a.route.name),
          (status) => done(status, a.route.name),
        );
      } catch (err) {
        fail(err, a.route.name);
      }
    };
    let admitted: Admission | Promise<Admission>;
    try {
      admitted = admit(rt, facts, req.method ?? 'GET', url, req.socket.remoteAddress ?? '', (req.socket as TLSSocket).encrypted === true);
    } catch (err) {
      fail(err, '-');
      return;
    }
    if (admitted instanceof Promise) admitted.then(proceed, (err: unknown) => fail(err, '-'));
    else proceed(admitted);
  };
}
