import type { ServerResponse } from 'node:http';
import type { Principal } from '../auth/identity.ts';
import type { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Route } from './route-table.ts';
import type { PolicyRuntime } from './runtime.ts';

/**
 * One request (or one WebSocket upgrade) as every stage sees it. The adapter that receives it creates it once
 * (proxy/http-handler.ts, proxy/websocket.ts, http/express-app.ts); each later stage fills its own field.
 * One small object on the hot path: `log` is the base logger, and `id` goes into each line as `reqId`
 * (a pino child logger per request would cost more than the rest of the context).
 */
export interface RequestContext {
  /** The request id: the client's well-formed X-Request-Id, else a fresh UUID. Echoed, forwarded, logged. */
  readonly id: string;
  readonly log: Logger;
  /** The config snapshot this request runs under, to its end (a reload does not change it mid-request). */
  readonly runtime: PolicyRuntime;
  /** Date.now() when the request arrived, for the duration in its log line. */
  readonly startedAt: number;
  /** The mapping admission chose (/api only). */
  route: Route | undefined;
  /** Who is calling, once admission knows (undefined: anonymous, or not known yet). */
  principal: Principal | undefined;
  /** Why the request was refused or failed: its one log line carries the code. */
  error: GatehouseError | undefined;
  /** Set by the /api handler: what {@link cancelRequest} needs to end the request from outside it. */
  cancel: Cancellation | undefined;
}

/**
 * A request the /api handler is forwarding, as http/client-error.ts may end it. Plain data and the handler's own
 * `fail`, not a closure of its own: one more closure per request measured 15 % of the proxy's CPU (docs/performance.md).
 */
export interface Cancellation {
  /** Ended from outside: admission, body reading and forwarding stop where they are. */
  cancelled: boolean;
  /** The backend exchange, once the request is with its backend. */
  exchange: { cut(): void } | undefined;
  /** The backend call's span, ended when the exchange is cut. */
  call: { end(status: number): void } | undefined;
  /** The handler's answer for a failed request: its JSON error, access line and metrics. */
  readonly fail: (err: GatehouseError) => void;
}

/**
 * Ends the request `res` answers with `err`, through that response (node:http sends it in its turn among pipelined
 * answers), cut from its backend first, and closes the connection after it. False when its answer has begun, it is
 * over already, or nothing can cancel it (not an /api request).
 */
export function cancelRequest(res: ServerResponse & WithRequestContext, err: GatehouseError): boolean {
  const c = res[RESPONSE_CONTEXT]?.cancel;
  if (c === undefined || c.cancelled || res.headersSent || res.destroyed) return false;
  c.cancelled = true;
  if (c.exchange) {
    c.exchange.cut();
    // 499 as for a client that left: the backend did not fail, the client did.
    c.call?.end(499);
  }
  res.setHeader('connection', 'close');
  c.fail(err);
  return true;
}

/**
 * Where an adapter keeps the context of the request a response answers (set on the ServerResponse by
 * proxy/http-handler.ts): a refusal node:http raises on the connection meanwhile, its request timeout or a parse
 * error in its body, is then answered under that request's id and recorded in that request's one access line
 * (http/client-error.ts).
 */
export const RESPONSE_CONTEXT: unique symbol = Symbol('gatehouse.requestContext');

/** A response that may carry its request's context. */
export interface WithRequestContext {
  [RESPONSE_CONTEXT]?: RequestContext;
}

export function createRequestContext(id: string, log: Logger, runtime: PolicyRuntime, startedAt: number): RequestContext {
  return { id, log, runtime, startedAt, route: undefined, principal: undefined, error: undefined, cancel: undefined };
}
