import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { asGatehouseError, GatehouseError, lingerAfterAnswer, sendError } from '../errors.ts';
import type { AccessLog } from '../observability/access-log.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { OutageLog } from '../observability/outage-log.ts';
import { createTraceIds, type TraceIds } from '../observability/trace-context.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { Admission, Admit } from '../policy/admit.ts';
import { createRequestContext, RESPONSE_CONTEXT, type Cancellation, type WithRequestContext } from '../policy/context.ts';
import { FALLBACK, isGuardRefusal, PRIMARY, type RouteGuard } from './backends/guard.ts';
import { forward, type EventStreams } from './forward.ts';
import { buildUpstreamHeaders, createIdentityLinesMemo, incomingTrace, scanHeaders, upstreamCookie } from './headers.ts';
import { guardOf, type Runtime } from './runtime.ts';
import { checkBody, checkBodyMediaType } from '../policy/schemas.ts';
import { rawHeaderValues, readBody } from './read-body.ts';

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
    (res as ServerResponse & WithRequestContext)[RESPONSE_CONTEXT] = ctx;
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    const peer = req.socket.remoteAddress ?? '';
    const trace = facts.traceparent === undefined ? undefined : incomingTrace(facts, rt.trusts(peer, 0));
    const span = tracing.enabled ? tracing.startRequest('gatehouse.api', trace?.parent) : undefined;
    const traceId = span?.traceId ?? trace?.parent?.traceId ?? ids.traceId();
    let logged = false;
    // Set once the mapping's guard counted this request: released exactly once, by the first done().
    let guard: RouteGuard | undefined;
    let via = PRIMARY;
    // Once admitted, the headers admission chose (CORS) belong on any answer, a 502 or 504 included.
    let admittedHeaders: readonly string[] | undefined;
    const done = (status: number, stream = false, backendSeconds = -1) => {
      if (logged) return;
      logged = true;
      // The client did not leave: node:http's request timeout cut it off, and it was answered 408 (client-error.ts).
      if (status === 499 && ctx.error?.code === 'request_timeout') status = 408;
      if (guard !== undefined) {
        const code = ctx.error?.code;
        // Neutral for the backend's circuit: Gatehouse's own failure, or the client's (too slow, a broken body).
        guard.leave(via, status, code === 'internal_error' || code === 'too_busy' || code === 'request_timeout' || c.cancelled, stream);
      }
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
      // Over already (answered, or cancelled by client-error.ts): an admission that fails later changes nothing.
      if (logged) return;
      if (!res.headersSent) {
        res.setHeader('x-request-id', ctx.id);
        if (admittedHeaders)
          for (let i = 0; i < admittedHeaders.length; i += 2)
            res.appendHeader(admittedHeaders[i] as string, admittedHeaders[i + 1] as string);
      }
      const known = asGatehouseError(err);
      ctx.error = known;
      metrics.errorResponse(known.code, known.status);
      if (known.status >= 500 && !isGuardRefusal(known.code) && !outages.failed(known, ctx.id))
        log.error({ reqId: ctx.id, err: known.cause ?? known, code: known.code, detail: known.logDetail }, 'proxy error');
      sendError(res, known, ctx.id);
      done(known.status);
    };
    // What http/client-error.ts needs to end this request from outside (policy/context.ts cancelRequest).
    const c: Cancellation = { cancelled: false, exchange: undefined, call: undefined, fail };
    ctx.cancel = c;
    if (facts.refusal !== undefined) {
      // Where this body ends is exactly what is in doubt: never read another request from this connection.
      res.setHeader('connection', 'close');
      return fail(new GatehouseError('bad_request', { logDetail: facts.refusal }));
    }
    const send = (a: Admission, body: Buffer | undefined) => {
      if (c.cancelled) return;
      try {
        let origin = a.route.origin;
        let base = a.route.basePath;
        const g = guardOf(rt, a.route);
        if (!g.free) {
          via = g.enter();
          guard = g;
          if (via === FALLBACK) {
            origin = g.fallbackOrigin as string;
            base = g.fallbackBase;
          }
        }
        const lines = a.principal ? identityLines(a.route, a.principal, ctx.id) : undefined;
        const headers = buildUpstreamHeaders(facts, a.route, lines, a.client, a.hostHeader, ctx.id, upstreamCookie(rt, facts.cookie));
        const backendCall = span?.backendCall(a.route.name);
        c.call = backendCall;
        headers.push('traceparent', backendCall?.traceparent ?? `00-${traceId}-${ids.spanId()}-${trace?.parent?.flags ?? '00'}`);
        if (trace?.tracestate !== undefined) headers.push('tracestate', trace.tracestate);
        c.exchange = forward(
          req,
          res,
          {
            pool: rt.pools.get(origin),
            method,
            path: base + a.path + a.query,
            headers,
            framing: facts.framing,
            body,
            timeoutMs: a.route.timeoutMs,
            responseHeaders: a.responseHeaders ? ['x-request-id', ctx.id, ...a.responseHeaders] : ['x-request-id', ctx.id],
            ownCookies: rt.ownCookies,
            streams: deps.streams,
            guard,
          },
          fail,
          backendCall
            ? (status, stream, backendSeconds) => {
                backendCall.end(status);
                done(status, stream, backendSeconds);
              }
            : done,
        );
      } catch (err) {
        fail(err);
      }
    };
    const proceed = (a: Admission) => {
      if (c.cancelled) return;
      ctx.route = a.route;
      ctx.principal = a.principal;
      if (a.answer) {
        lingerAfterAnswer(res);
        res.writeHead(a.answer.status, ['x-request-id', ctx.id, ...a.answer.headers]);
        res.end();
        done(a.answer.status);
        return;
      }
      admittedHeaders = a.responseHeaders;
      const schema = a.schema;
      if (!schema?.body) return send(a, undefined);
      // Only a body a schema checks is buffered; it is then forwarded from the buffer, byte for byte.
      try {
        checkBodyMediaType(rawHeaderValues(req.rawHeaders, 'content-type'), rawHeaderValues(req.rawHeaders, 'content-encoding'));
      } catch (err) {
        return fail(err);
      }
      readBody(req, facts.framing, schema.maxBodyBytes, (err, body) => {
        if (c.cancelled) return;
        if (err) {
          // The rest of an oversized body is not worth reading as the framing of a next request.
          res.setHeader('connection', 'close');
          return fail(err);
        }
        if (!body) return done(499);
        try {
          checkBody(schema, body);
        } catch (checkErr) {
          return fail(checkErr);
        }
        send(a, body);
      });
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
