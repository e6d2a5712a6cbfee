import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { GatehouseError } from '../errors.ts';
import { filterResponseHeaders } from './headers.ts';

/** Keep-alive pools, one per backend origin, built with a config snapshot and closed with it. */
export interface Pools {
  get(origin: string): Pool;
  close(): Promise<void>;
}

export function createPools(options: { connections?: number; keepAliveTimeoutMs?: number; connectTimeoutMs?: number } = {}): Pools {
  const pools = new Map<string, Pool>();
  return {
    get(origin) {
      let pool = pools.get(origin);
      if (!pool) {
        pool = new Pool(origin, {
          connections: options.connections ?? 128,
          pipelining: 1,
          // Shorter than Node's default server keep-alive (5 s), so we never reuse a socket the backend is closing.
          keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
          keepAliveMaxTimeout: 60_000,
          connectTimeout: options.connectTimeoutMs ?? 5000,
        });
        pools.set(origin, pool);
      }
      return pool;
    },
    async close() {
      await Promise.allSettled([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}

function classify(err: Error & { code?: string }): GatehouseError {
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatehouseError('gateway_timeout', { cause: err, logDetail: err.code });
    default:
      return new GatehouseError('bad_gateway', { cause: err, logDetail: err.code ?? err.message });
  }
}

export interface ForwardRequest {
  readonly pool: Dispatcher;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly hasBody: boolean;
  readonly timeoutMs: number;
  /** Added to the backend's response headers ([name, value, ...]). */
  readonly responseHeaders: readonly string[];
  /** Cookie names a backend's Set-Cookie may not touch. */
  readonly ownCookies: readonly string[];
}

/**
 * Streams the request to the backend and the response back, with backpressure both ways and nothing
 * buffered whole. `onError` is told of failures before the response started; `onDone` once it is over.
 * Uses undici's raw dispatch handler: no intermediate stream, and the controller (pause, resume, abort) in
 * hand; measured at the same CPU as `pool.stream()` or up to a third less (docs/performance.md).
 */
export function forward(req: IncomingMessage, res: ServerResponse, f: ForwardRequest, onError: (err: GatehouseError) => void, onDone: (status: number) => void): void {
  const exchange = new Exchange(res, f, onError, onDone);
  // The listener stays after the response: it then finds the response finished and does nothing, which
  // costs less than removing it.
  res.on('close', exchange.onClientClose);
  f.pool.dispatch(
    {
      path: f.path,
      method: f.method as Dispatcher.HttpMethod,
      headers: f.headers,
      body: f.hasBody ? req : null,
      headersTimeout: f.timeoutMs,
      bodyTimeout: f.timeoutMs,
      idempotent: false,
      blocking: false,
    },
    exchange,
  );
}

/** One proxied exchange, as undici's dispatch handler: methods on a prototype, not six closures a request. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
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
    const { res, controller } = this;
    if (!res.writableFinished && controller && !controller.aborted) {
      controller.abort(new Error('client closed the connection'));
    }
    if (!res.writableFinished) {
      this.status = this.status || 499;
      this.finish();
    }
  };

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onDone(this.status);
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.res.destroyed) c.abort(new Error('client closed the connection'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    this.res.writeHead(statusCode, filterResponseHeaders(headers, this.f.responseHeaders, this.f.ownCookies));
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      c.pause();
      this.res.once('drain', () => c.resume());
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.finish();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.finished) return;
    const e = err as Error & { code?: string };
    const { res } = this;
    if (res.destroyed || e.code === 'UND_ERR_ABORTED') {
      this.status = this.status || 499;
      this.finish();
      return;
    }
    if (!res.headersSent) {
      const mapped = classify(e);
      this.status = mapped.status;
      this.onError(mapped);
    } else {
      // The status line is gone: the only honest signal left is cutting the response short.
      res.destroy(e);
    }
    this.finish();
  }
}
