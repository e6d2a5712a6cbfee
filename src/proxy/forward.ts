import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatehouseError, lingerAfterAnswer } from '../errors.ts';
import type { RouteGuard } from './backends/guard.ts';
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

/**
 * The event streams (`text/event-stream`) being relayed. An event stream has no natural end a drain could wait
 * for; at the shutdown deadline each is ended with its last chunk, as if the backend had ended it, so the browser's
 * EventSource sees a clean end (and reconnects elsewhere) rather than a cut connection.
 */
export interface EventStreams {
  /** How many are being relayed now (the open event streams gauge). */
  count(): number;
  /** Ends every event stream being relayed (the backend exchanges are abandoned); resolves once written, or after `capMs`. */
  endAll(capMs: number): Promise<void>;
}

interface EventStreamSet extends EventStreams {
  readonly open: Set<Exchange>;
}

/** One registry per app: the HTTP proxy registers into it, app.close() ends what is left at its deadline. */
export function createEventStreams(): EventStreams {
  const open = new Set<Exchange>();
  const streams: EventStreamSet = {
    open,
    count: () => open.size,
    async endAll(capMs) {
      const written = [...open].map((e) => e.endStream());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(written), new Promise<void>((resolve) => (timer = setTimeout(resolve, capMs)))]);
      clearTimeout(timer);
    },
  };
  return streams;
}

const EVENT_STREAM = /^\s*text\/event-stream\s*(;|$)/i;

function isEventStream(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-type') return EVENT_STREAM.test(headers[i + 1] as string);
  return false;
}

export interface ForwardRequest {
  readonly pool: UpstreamPool;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  /** The client's body as Node framed it (IncomingFacts.framing): the upstream client frames it the same way. */
  readonly framing: 'none' | 'chunked' | number;
  /** The body read whole (a schema checked it): sent from here, with Content-Length, whatever the client's framing. */
  readonly body?: Buffer | undefined;
  readonly timeoutMs: number;
  /** Added to the backend's response headers ([name, value, ...]). */
  readonly responseHeaders: readonly string[];
  /** Cookie names a backend's Set-Cookie may not touch. */
  readonly ownCookies: readonly string[];
  /** Where an event-stream response is registered while it is relayed. */
  readonly streams: EventStreams | undefined;
  /** The mapping's guard when it counts requests: an event-stream response moves to its streams count (maxStreams). */
  readonly guard: RouteGuard | undefined;
}

/**
 * Streams the request to the backend and the response back, with backpressure both ways and nothing
 * buffered whole. `onError` is told of failures before the response started; `onDone` once it is over, with
 * whether the response was counted as a stream by `f.guard`, and the seconds from sending the request to the
 * backend's response head (negative when no head came).
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  f: ForwardRequest,
  onError: (err: GatehouseError) => void,
  onDone: (status: number, stream: boolean, backendSeconds: number) => void,
): { cut(): void } | undefined {
  // The client left while admission awaited the session store: its 'close' has fired already, so nothing would
  // ever abort an exchange started now, and a response written to nobody would hold it (and its pool) forever.
  if (res.destroyed || req.destroyed) {
    onDone(499, false, -1);
    return undefined;
  }
  const exchange = new Exchange(res, f, onError, onDone);
  // The listener stays after the response: it then finds the response finished and does nothing, which
  // costs less than removing it.
  res.on('close', exchange.onClientClose);
  exchange.control = f.pool.request(
    {
      method: f.method,
      path: f.path,
      headers: f.headers,
      body: f.body ? { kind: 'buffer', data: f.body } : requestBody(req, f.framing),
      timeoutMs: f.timeoutMs,
    },
    exchange,
  );
  return exchange;
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
  private streaming = false;
  /** Counted by the guard as a stream rather than a request in flight. */
  private counted = false;
  private status = 0;
  private readonly sentAt = performance.now();
  private headAt = 0;
  private readonly res: ServerResponse;
  private readonly f: ForwardRequest;
  private readonly onError: (err: GatehouseError) => void;
  private readonly onDone: (status: number, stream: boolean, backendSeconds: number) => void;

  constructor(
    res: ServerResponse,
    f: ForwardRequest,
    onError: (err: GatehouseError) => void,
    onDone: (status: number, stream: boolean, backendSeconds: number) => void,
  ) {
    this.res = res;
    this.f = f;
    this.onError = onError;
    this.onDone = onDone;
  }

  /** Abandons the backend's exchange without a word to the client: whoever cut it answers (and logs) the request. */
  cut(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.streaming) (this.f.streams as EventStreamSet).open.delete(this);
    this.control?.abort();
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
    if (this.streaming) (this.f.streams as EventStreamSet).open.delete(this);
    this.onDone(this.status, this.counted, this.headAt === 0 ? -1 : (this.headAt - this.sentAt) / 1000);
  }

  /** Ends the response as the backend ending it would, and abandons the backend's; resolves once written. */
  endStream(): Promise<void> {
    const { res } = this;
    if (this.finished || res.destroyed) return Promise.resolve();
    // Finished first: the abort must not reach onResponseError, which would cut the response instead.
    this.finish();
    this.control?.abort();
    return new Promise<void>((resolve) => {
      res.once('close', resolve);
      res.end();
    });
  }

  onResponseStart(head: ResponseHead): void {
    this.headAt = performance.now();
    const { guard } = this.f;
    const eventStream = (this.f.streams !== undefined || guard !== undefined) && isEventStream(head.headers);
    if (guard !== undefined && eventStream) {
      if (!guard.toStream()) {
        // maxStreams is known only now, from the backend's Content-Type: its exchange is abandoned, the client told.
        this.control?.abort();
        this.status = 503;
        this.onError(new GatehouseError('too_busy', { headers: ['Retry-After', '1'], logDetail: 'maxStreams reached' }));
        this.finish();
        return;
      }
      this.counted = true;
    }
    this.status = head.status;
    this.res.writeHead(head.status, filterResponseHeaders(head.headers, head.connectionTokens, this.f.responseHeaders, this.f.ownCookies));
    if (this.f.streams && eventStream) {
      this.streaming = true;
      (this.f.streams as EventStreamSet).open.add(this);
    }
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
