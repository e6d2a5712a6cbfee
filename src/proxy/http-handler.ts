import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { asGatehouseError, GatehouseError, sendError } from '../errors.ts';
import type { AccessLog } from '../observability/access-log.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { OutageLog } from '../observability/outage-log.ts';
import { createTraceIds, type TraceIds } from '../observability/trace-context.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { Admission, Admit } from '../policy/admit.ts';
import { createRequestContext } from '../policy/context.ts';
import { forward, type EventStreams } from './forward.ts';
import { buildUpstreamHeaders, createIdentityLinesMemo, incomingTrace, scanHeaders, upstreamCookie } from './headers.ts';
import type { Runtime } from './runtime.ts';

export interface ProxyDeps {
  readonly runtime: () => Runtime;
  /** The admission pipeline (policy/admit.ts), with the identity resolver bound. */
  readonly admit: Admit;
  readonly log: Logger;
  /** Where Redis and IdP failures go: one line per outage interval, not one per 503 (the access line records each). */
  readonly outages: OutageLog;
  readonly access: AccessLog;
  /** Event-stream responses are registered here so a shutdown can end them cleanly at its deadline. */
  readonly streams?: EventStreams;
  readonly metrics: Metrics;
  readonly tracing: Tracing;
}

/** /api/* over HTTP, outside Express: the hot path allocates little and awaits only the session lookup. */
export function createHttpProxy(deps: ProxyDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { admit, log, outages, access, metrics, tracing } = deps;
  const identityLines = createIdentityLinesMemo(log);
  const ids: TraceIds = createTraceIds();
  return (req, res) => {
    const started = performance.now();
    metrics.requestStarted();
    const rt = deps.runtime();
    const accessLog = rt.config.accessLog;
    const facts = scanHeaders(req.rawHeaders);
    const ctx = createRequestContext(requestIdFrom(facts.requestId), log, rt, Date.now());
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    const peer = req.socket.remoteAddress ?? '';
    const trace = facts.traceparent === undefined ? undefined : incomingTrace(facts, rt.trusts(peer, 0));
    const span = tracing.enabled ? tracing.startRequest('gatehouse.api', trace?.parent) : undefined;
    const traceId = span?.traceId ?? trace?.parent?.traceId ?? ids.traceId();
    let logged = false;
    const done = (status: number, backendSeconds = -1) => {
      if (logged) return;
      logged = true;
      const mapping = ctx.route?.name ?? '-';
      metrics.requestEnded(mapping, method, status, (performance.now() - started) / 1000, backendSeconds);
      span?.end(status, mapping);
      if (accessLog === 'off' || (accessLog === 'errors' && status < 400 && status !== 0)) return;
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      access({
        reqId: ctx.id,
        trace: traceId,
        method,
        path,
        route: ctx.route?.name ?? '-',
        status,
        ms: Date.now() - ctx.startedAt,
        detail: ctx.error?.code,
      });
    };
    const fail = (err: unknown) => {
      if (!res.headersSent) res.setHeader('x-request-id', ctx.id);
      const known = asGatehouseError(err);
      ctx.error = known;
      metrics.errorResponse(known.code, known.status);
      if (known.status >= 500 && !outages.failed(known, ctx.id))
        log.error({ reqId: ctx.id, err: known.cause ?? known, code: known.code, detail: known.logDetail }, 'proxy error');
      sendError(res, known, ctx.id);
      done(known.status);
    };
    if (facts.refusal !== undefined) {
      // Where this body ends is exactly what is in doubt: never read another request from this connection.
      res.setHeader('connection', 'close');
      return fail(new GatehouseError('bad_request', { logDetail: facts.refusal }));
    }
    const proceed = (a: Admission) => {
      ctx.route = a.route;
      ctx.principal = a.principal;
      try {
        const lines = a.principal ? identityLines(a.route, a.principal, ctx.id) : undefined;
        const headers = buildUpstreamHeaders(facts, a.route, lines, a.client, a.hostHeader, ctx.id, upstreamCookie(rt, facts.cookie));
        const call = span?.backendCall(a.route.name);
        headers.push('traceparent', call?.traceparent ?? `00-${traceId}-${ids.spanId()}-${trace?.parent?.flags ?? '00'}`);
        if (trace?.tracestate !== undefined) headers.push('tracestate', trace.tracestate);
        forward(
          req,
          res,
          {
            pool: rt.pools.get(a.route.origin),
            method,
            path: a.route.basePath + a.path + a.query,
            headers,
            framing: facts.framing,
            timeoutMs: a.route.timeoutMs,
            responseHeaders: a.responseHeaders ? ['x-request-id', ctx.id, ...a.responseHeaders] : ['x-request-id', ctx.id],
            ownCookies: rt.ownCookies,
            streams: deps.streams,
          },
          fail,
          call
            ? (status, backendSeconds) => {
                call.end(status);
                done(status, backendSeconds);
              }
            : done,
        );
      } catch (err) {
        fail(err);
      }
    };
    let admitted: Admission | Promise<Admission>;
    try {
      const encrypted = (req.socket as TLSSocket).encrypted === true;
      admitted = span ? span.run(() => admit(rt, facts, method, url, peer, encrypted)) : admit(rt, facts, method, url, peer, encrypted);
    } catch (err) {
      fail(err);
      return;
    }
    if (admitted instanceof Promise) admitted.then(proceed, fail);
    else proceed(admitted);
  };
}
