import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatehouseError, lingerAfterAnswer } from '../errors.ts';
import { filterResponseHeaders } from './headers.ts';
import {
  createUpstreamPool,
  type UpstreamControl,
  type UpstreamError,
  type UpstreamHandler,
  type UpstreamPool,
  type UpstreamPoolOptions,
} from './upstream/client.ts';
import { NO_BODY, type RequestBody } from './upstream/request-head.ts';
import type { ResponseHead } from './upstream/response-head.ts';

/** Keep-alive pools, one per backend origin, built with a config snapshot and retired with it. */
export interface Pools {
  get(origin: string): UpstreamPool;
  /** Keeps no idle connection from now on; resolves when the requests in flight on these pools are done. */
  close(): Promise<void>;
}

export function createPools(options: UpstreamPoolOptions = {}): Pools {
  const pools = new Map<string, UpstreamPool>();
  let retired = false;
  return {
    get(origin) {
      let pool = pools.get(origin);
      if (!pool) {
        // keepAliveTimeoutMs defaults below Node's server keep-alive (5 s), so we never reuse a socket the backend is closing.
        pool = createUpstreamPool(origin, options);
        // A request admitted under a configuration since replaced still gets its answer; no connection stays after it.
        if (retired) void pool.close();
        pools.set(origin, pool);
      }
      return pool;
    },
    async close() {
      retired = true;
      await Promise.allSettled([...pools.values()].map((p) => p.close()));
    },
  };
}

/** The one mapping from an upstream failure to what the client is told (HTTP requests and WebSocket handshakes). */
export function upstreamFailure(err: UpstreamError): GatehouseError {
  switch (err.code) {
    case 'UPSTREAM_HEADERS_TIMEOUT':
    case 'UPSTREAM_BODY_TIMEOUT':
      return new GatehouseError('gateway_timeout', { cause: err, logDetail: err.code });
    case 'UPSTREAM_INVALID_REQUEST':
      // The writer's own guard caught what every check before it let through: Gatehouse's fault, not the backend's.
      return new GatehouseError('internal_error', { cause: err, logDetail: `${err.code}: ${err.message}` });
    default: {
      const cause = err.cause as { code?: string } | undefined;
      return new GatehouseError('bad_gateway', {
        cause: err,
        logDetail: `${err.code}${cause?.code ? ` ${cause.code}` : ''}: ${err.message}`,
      });
    }
  }
}

export interface ForwardRequest {
  readonly pool: UpstreamPool;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  /** The client's body as Node framed it (IncomingFacts.framing): the upstream client frames it the same way. */
  readonly framing: 'none' | 'chunked' | number;
  readonly timeoutMs: number;
  /** Added to the backend's response headers ([name, value, ...]). */
  readonly responseHeaders: readonly string[];
  /** Cookie names a backend's Set-Cookie may not touch. */
  readonly ownCookies: readonly string[];
}

/**
 * Streams the request to the backend and the response back, with backpressure both ways and nothing
 * buffered whole. `onError` is told of failures before the response started; `onDone` once it is over.
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  f: ForwardRequest,
  onError: (err: GatehouseError) => void,
  onDone: (status: number) => void,
): void {
  // The client left while admission awaited the session store: its 'close' has fired already, so nothing would
  // ever abort an exchange started now, and a response written to nobody would hold it (and its pool) forever.
  if (res.destroyed || req.destroyed) return onDone(499);
  const exchange = new Exchange(res, f, onError, onDone);
  // The listener stays after the response: it then finds the response finished and does nothing, which
  // costs less than removing it.
  res.on('close', exchange.onClientClose);
  exchange.control = f.pool.request(
    { method: f.method, path: f.path, headers: f.headers, body: requestBody(req, f.framing), timeoutMs: f.timeoutMs },
    exchange,
  );
}

function requestBody(req: IncomingMessage, framing: 'none' | 'chunked' | number): RequestBody {
  if (framing === 'none') return NO_BODY;
  if (framing === 'chunked') return { kind: 'chunked', stream: req };
  return { kind: 'length', length: framing, stream: framing > 0 ? req : null };
}

/** One proxied exchange, as the upstream client's handler: methods on a prototype, not closures a request. */
class Exchange implements UpstreamHandler {
  control: UpstreamControl | undefined;
  private finished = false;
  private status = 0;
  private readonly res: ServerResponse;
  private readonly f: ForwardRequest;
  private readonly onError: (err: GatehouseError) => void;
  private readonly onDone: (status: number) => void;

  constructor(res: ServerResponse, f: ForwardRequest, onError: (err: GatehouseError) => void, onDone: (status: number) => void) {
    this.res = res;
    this.f = f;
    this.onError = onError;
    this.onDone = onDone;
  }

  readonly onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.control?.abort();
    this.status = this.status || 499;
    this.finish();
  };

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onDone(this.status);
  }

  onResponseStart(head: ResponseHead): void {
    this.status = head.status;
    this.res.writeHead(head.status, filterResponseHeaders(head.headers, head.connectionTokens, this.f.responseHeaders, this.f.ownCookies));
  }

  onResponseData(chunk: Buffer): boolean {
    if (this.res.destroyed) {
      this.onClientClose();
      return true;
    }
    if (this.res.write(chunk)) return true;
    this.res.once('drain', () => this.control?.resume());
    return false;
  }

  onResponseEnd(): void {
    // A backend may answer before it read the whole body (a 401 or 413 to an upload).
    lingerAfterAnswer(this.res);
    this.res.end();
    this.finish();
  }

  onResponseError(err: UpstreamError): void {
    if (this.finished) return;
    const { res } = this;
    if (res.destroyed) {
      this.status = this.status || 499;
    } else if (!res.headersSent) {
      const mapped = upstreamFailure(err);
      this.status = mapped.status;
      this.onError(mapped);
    } else {
      // The status line is gone: the only honest signal left is cutting the response short.
      res.destroy(err);
    }
    this.finish();
  }
}
