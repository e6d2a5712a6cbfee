import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { ChunkedDecoder, ChunkedError } from './chunked.ts';
import { parseResponseHead, ResponseHeadError, type ResponseHead } from './response-head.ts';

/**
 * Gatehouse's HTTP/1.1 client for backends: keep-alive connections per origin (up to 128 kept idle), one
 * request at a time on each (no pipelining), bodies streamed both ways with backpressure, strict response framing.
 *
 * Why not undici: on the proxy's hot path undici's own JavaScript (request validation, the dispatcher
 * chain, the wasm parser's callbacks, a header object per response) cost about as much CPU as everything
 * else Gatehouse does per request; this client does the one job the proxy needs (docs/performance.md).
 */

export type UpstreamErrorCode =
  | 'UPSTREAM_CONNECT'
  | 'UPSTREAM_RESET'
  | 'UPSTREAM_PROTOCOL'
  | 'UPSTREAM_HEADERS_TIMEOUT'
  | 'UPSTREAM_BODY_TIMEOUT';

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  constructor(code: UpstreamErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

export interface UpstreamRequest {
  readonly method: string;
  /** The request target, already validated (no CR, LF or space). */
  readonly path: string;
  /**
   * [name, value, ...] without Host or framing headers other than the body's Content-Length. Values must be
   * free of CR and LF: node:http's parser guarantees it for what the client sent, Gatehouse's own checks for
   * what it adds.
   */
  readonly headers: readonly string[];
  readonly body: Readable | null;
  /** The body's length is unknown: it is sent with Transfer-Encoding: chunked. */
  readonly chunked: boolean;
  /**
   * Limit for the response head to arrive (from the request's start, or from the last chunk of a request
   * body still being sent), then for each gap in the response body.
   */
  readonly timeoutMs: number;
}

export interface UpstreamControl {
  /** Stop reading the response until resume(); the timeout does not run meanwhile. */
  pause(): void;
  resume(): void;
  /** Give up the exchange: its connection is closed, no handler method is called again. */
  abort(): void;
}

/** Called asynchronously, never from inside request(). */
export interface UpstreamHandler {
  onResponseStart(head: ResponseHead): void;
  /** Returns false when the consumer is full: reading stops until control.resume(). */
  onResponseData(chunk: Buffer): boolean;
  onResponseEnd(): void;
  onResponseError(err: UpstreamError): void;
}

export interface UpstreamPool {
  request(req: UpstreamRequest, handler: UpstreamHandler): UpstreamControl;
  /**
   * Retires the pool: idle connections close now and every other one as soon as its exchange ends.
   * Requests still arriving (admitted under the configuration this pool belongs to) are served on
   * connections closed after them. Resolves when nothing is in flight.
   */
  close(): Promise<void>;
}

export interface UpstreamPoolOptions {
  /**
   * Cap on connections per origin, busy or idle; requests beyond it wait in order. Default: no cap, as
   * nginx and Go's transport: with one, long-lived responses (server-sent events, long polls) would hold
   * every connection and queue everything else behind them until the timeout.
   */
  readonly connections?: number;
  /** Idle connections kept per origin for reuse (default 128); one more finishing is closed instead. */
  readonly maxIdle?: number;
  /** Idle connections are closed after this (default 4000 ms, or the backend's Keep-Alive hint minus 1 s if shorter). */
  readonly keepAliveTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Largest response head accepted (default 16 KiB, as node:http). */
  readonly maxHeadBytes?: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** How often deadlines are checked: timeouts fire up to this late. */
const TICK_MS = 50;

// Exchange states.
const QUEUED = 0;
const WAIT_HEAD = 1;
const BODY = 2;
const DONE = 3;

export function createUpstreamPool(origin: string, options: UpstreamPoolOptions = {}): UpstreamPool {
  return new OriginPool(new URL(origin), options);
}

class OriginPool implements UpstreamPool {
  readonly hostHeader: string;
  readonly maxHeadBytes: number;
  private readonly host: string;
  private readonly port: number;
  private readonly tls: boolean;
  private readonly max: number;
  private readonly maxIdle: number;
  private readonly keepAliveMs: number;
  private readonly connectTimeoutMs: number;
  /** Every open or opening connection; an exchange in flight is on one of these or in the queue. */
  private readonly conns: Connection[] = [];
  private readonly idle: Connection[] = [];
  private readonly queue: Exchange[] = [];
  /**
   * Exchanges not finished yet. A counter, not a Set of them: entries deleted from a long-lived Set stayed
   * reachable for the scavenger, and every request's objects were promoted to the old generation.
   */
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private closing: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(url: URL, options: UpstreamPoolOptions) {
    this.tls = url.protocol === 'https:';
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.port = Number(url.port) || (this.tls ? 443 : 80);
    this.hostHeader = url.host;
    this.max = options.connections ?? Number.POSITIVE_INFINITY;
    this.maxIdle = options.maxIdle ?? 128;
    this.keepAliveMs = options.keepAliveTimeoutMs ?? 4000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.maxHeadBytes = options.maxHeadBytes ?? 16384;
  }

  request(req: UpstreamRequest, handler: UpstreamHandler): UpstreamControl {
    const ex = new Exchange(this, req, handler);
    this.inFlight++;
    this.startTimer();
    this.assign(ex, false);
    return ex;
  }

  /** Gives the exchange a connection: an idle one (unless `fresh`), a new one, or a place in the queue. */
  assign(ex: Exchange, fresh: boolean): void {
    if (!fresh) {
      const conn = this.idle.pop();
      if (conn) return ex.start(conn);
    }
    if (this.conns.length < this.max) return ex.start(this.connect());
    this.queue.push(ex);
  }

  dequeue(ex: Exchange): void {
    const i = this.queue.indexOf(ex);
    if (i !== -1) this.queue.splice(i, 1);
  }

  /** An exchange is over. Its connection, if it can carry another request, serves the queue or waits idle. */
  finished(conn: Connection | null, reusable: boolean): void {
    this.inFlight--;
    if (conn) {
      if (!reusable || this.closing) conn.destroy();
      else {
        const next = this.queue.shift();
        if (next) next.start(conn);
        else if (this.idle.length >= this.maxIdle) conn.destroy();
        else {
          conn.idleSince = Date.now();
          this.idle.push(conn);
        }
      }
    }
    if (this.closing && this.inFlight === 0) this.closing.resolve();
  }

  /** A connection is gone (closed by either side): it no longer counts, and a queued exchange may open another. */
  forget(conn: Connection): void {
    this.conns.splice(this.conns.indexOf(conn), 1);
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    const next = this.queue.shift();
    if (next) next.start(this.connect());
  }

  private connect(): Connection {
    const socket = this.tls
      ? tlsConnect({ host: this.host, port: this.port, servername: isIP(this.host) ? undefined : this.host, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: this.host, port: this.port });
    const conn = new Connection(this, socket, this.tls, this.connectTimeoutMs, this.keepAliveMs);
    this.conns.push(conn);
    return conn;
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private tick(): void {
    const now = Date.now();
    // Copies: a timeout closes connections, and a retry or the queue may open others.
    for (const conn of [...this.conns]) conn.exchange?.checkDeadline(now);
    for (const ex of [...this.queue]) ex.checkDeadline(now);
    for (const conn of [...this.idle]) {
      if (now - conn.idleSince >= conn.idleLimitMs) conn.destroy();
    }
    if (this.inFlight === 0 && this.idle.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): Promise<void> {
    if (!this.closing) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.closing = { promise, resolve };
      for (const conn of [...this.idle]) conn.destroy();
      if (this.inFlight === 0) resolve();
    }
    return this.closing.promise;
  }
}

/** One socket to the backend, with its listeners attached once for its whole life. */
class Connection {
  readonly socket: Socket;
  exchange: Exchange | null = null;
  idleSince = 0;
  idleLimitMs: number;
  /** It has carried a request already: a failure before any answer may mean the backend closed it while idle. */
  used = false;
  connected = false;
  private readonly pool: OriginPool;
  private error: Error | undefined;
  private gone = false;

  constructor(pool: OriginPool, socket: Socket, tls: boolean, connectTimeoutMs: number, keepAliveMs: number) {
    this.pool = pool;
    this.socket = socket;
    this.idleLimitMs = keepAliveMs;
    socket.setNoDelay(true);
    socket.setTimeout(connectTimeoutMs);
    socket.once('timeout', () => {
      if (!this.connected) socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    });
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      socket.setTimeout(0);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.exchange) this.exchange.onData(chunk);
      // Bytes nobody asked for: whatever the backend meant, this connection is out of step.
      else this.destroy();
    });
    socket.on('end', () => {
      if (this.exchange) this.exchange.onEnd();
      else this.destroy();
    });
    socket.on('drain', () => this.exchange?.onDrain());
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      if (!this.gone) {
        this.gone = true;
        this.pool.forget(this);
      }
      this.exchange?.onClosed(this, this.error);
    });
  }

  /** Keeps the backend's Keep-Alive hint when it is shorter than ours, with a second's margin. */
  hint(ms: number | undefined): void {
    if (ms !== undefined && ms - 1000 < this.idleLimitMs) this.idleLimitMs = Math.max(0, ms - 1000);
  }

  destroy(): void {
    this.exchange = null;
    if (!this.gone) {
      this.gone = true;
      this.pool.forget(this);
    }
    this.socket.destroy();
  }
}

/** One request and its response. Implements the control the handler gets. */
class Exchange implements UpstreamControl {
  private state: number = QUEUED;
  private paused = false;
  private readonly pool: OriginPool;
  private readonly req: UpstreamRequest;
  private readonly handler: UpstreamHandler;
  private conn: Connection | null = null;
  private deadline: number;
  private head: ResponseHead | undefined;
  private headBuf: Buffer | null = null;
  private remaining = 0;
  private decoder: ChunkedDecoder | undefined;
  /** Some byte of a response arrived on this exchange's connection. */
  private answered = false;
  private bodySent: boolean;
  private retried = false;
  private bodyListeners: { data: (chunk: Buffer) => void; end: () => void; close: () => void } | undefined;
  /** The chunked decoder's output, made only for chunked responses. */
  private decoded: ((chunk: Buffer) => void) | undefined;

  constructor(pool: OriginPool, req: UpstreamRequest, handler: UpstreamHandler) {
    this.pool = pool;
    this.req = req;
    this.handler = handler;
    this.bodySent = req.body === null;
    this.deadline = Date.now() + req.timeoutMs;
  }

  start(conn: Connection): void {
    this.conn = conn;
    conn.exchange = this;
    this.state = WAIT_HEAD;
    const { req } = this;
    let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.pool.hostHeader}\r\n`;
    const h = req.headers;
    for (let i = 0; i < h.length; i += 2) head += `${h[i] as string}: ${h[i + 1] as string}\r\n`;
    if (req.body && req.chunked) head += 'transfer-encoding: chunked\r\n';
    conn.socket.write(`${head}\r\n`, 'latin1');
    if (req.body) this.sendBody(req.body);
  }

  // --- the request body ------------------------------------------------------------------------------

  private sendBody(body: Readable): void {
    // Listeners made here, not per exchange: most requests have no body.
    const listeners = {
      data: (chunk: Buffer) => this.onBodyData(body, chunk),
      end: () => this.onBodyEnd(),
      // The client's body closed without its end (the client went away): the backend must not take it as whole.
      close: () => {
        if (!this.bodySent) this.abort();
      },
    };
    this.bodyListeners = listeners;
    body.on('data', listeners.data);
    body.once('end', listeners.end);
    body.once('close', listeners.close);
    body.resume();
  }

  private onBodyData(body: Readable, chunk: Buffer): void {
    const conn = this.conn;
    if (!conn || this.state === DONE) return;
    const socket = conn.socket;
    let ok: boolean;
    if (this.req.chunked) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      ok = socket.write(chunk);
    }
    if (!ok) body.pause();
    // The backend cannot be expected to answer before the body is whole: while it flows, the wait for the
    // response head counts from the latest chunk (a slow upload is the client's to bound, by requestTimeout).
    this.deadline = Date.now() + this.req.timeoutMs;
  }

  private onBodyEnd(): void {
    if (!this.conn || this.state === DONE) return;
    if (this.req.chunked) this.conn.socket.write('0\r\n\r\n', 'latin1');
    this.bodySent = true;
    if (this.state === WAIT_HEAD) this.deadline = Date.now() + this.req.timeoutMs;
  }

  onDrain(): void {
    if (!this.bodySent) this.req.body?.resume();
  }

  private detachBody(): void {
    const body = this.req.body;
    const listeners = this.bodyListeners;
    if (!body || !listeners) return;
    this.bodyListeners = undefined;
    body.off('data', listeners.data);
    body.off('end', listeners.end);
    body.off('close', listeners.close);
  }

  // --- the response ------------------------------------------------------------------------------------

  onData(chunk: Buffer): void {
    this.answered = true;
    let buf = chunk;
    let i = 0;
    if (this.state === WAIT_HEAD) {
      let searchFrom = 0;
      if (this.headBuf) {
        searchFrom = Math.max(0, this.headBuf.length - 3);
        buf = Buffer.concat([this.headBuf, chunk]);
        this.headBuf = null;
      }
      for (;;) {
        const end = buf.indexOf(CRLFCRLF, Math.max(i, searchFrom));
        if (end === -1 || end - i > this.pool.maxHeadBytes) {
          if (buf.length - i > this.pool.maxHeadBytes) return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', 'response head too large'));
          // A head with bare LF line ends would never show CRLF CRLF: refuse it now rather than at the timeout.
          if (hasBareLf(buf, Math.max(i, searchFrom))) return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', 'bare LF in the response head'));
          this.headBuf = i === 0 ? buf : buf.subarray(i);
          return;
        }
        let head: ResponseHead;
        try {
          head = parseResponseHead(buf.toString('latin1', i, end), this.req.method === 'HEAD');
        } catch (err) {
          return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', err instanceof ResponseHeadError ? err.message : 'unparsable response head', err));
        }
        i = end + 4;
        searchFrom = 0;
        if (head.status >= 200) {
          this.begin(head);
          break;
        }
        // 1xx: interim (100 Continue, 103 Early Hints); the final answer follows. 101 was never asked for.
        if (head.status === 101) return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', 'unexpected 101 Switching Protocols'));
      }
      // The handler may have aborted from onResponseStart (its client went away).
      if ((this.state as number) !== BODY) return;
      if (this.head?.framing === 'none') return this.complete(i < buf.length);
    } else if (this.state !== BODY) {
      return;
    }
    this.deadline = Date.now() + this.req.timeoutMs;
    if (i < buf.length) this.readBody(buf, i);
  }

  private begin(head: ResponseHead): void {
    this.head = head;
    this.state = BODY;
    this.remaining = head.length;
    if (head.framing === 'chunked') {
      this.decoder = new ChunkedDecoder();
      this.decoded = (chunk) => this.emit(chunk);
    }
    this.conn?.hint(head.keepAliveHintMs);
    this.handler.onResponseStart(head);
  }

  private readBody(buf: Buffer, i: number): void {
    const head = this.head as ResponseHead;
    if (head.framing === 'length') {
      const available = buf.length - i;
      if (available <= this.remaining) {
        this.remaining -= available;
        this.emit(i === 0 ? buf : buf.subarray(i));
        if (this.remaining === 0) this.complete(false);
      } else {
        const piece = buf.subarray(i, i + this.remaining);
        this.remaining = 0;
        this.emit(piece);
        this.complete(true);
      }
    } else if (head.framing === 'chunked') {
      const decoder = this.decoder as ChunkedDecoder;
      let end: number;
      try {
        end = decoder.push(buf, i, this.decoded as (chunk: Buffer) => void);
      } catch (err) {
        return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', err instanceof ChunkedError ? err.message : 'invalid chunked body', err));
      }
      if (decoder.done) this.complete(end < buf.length);
    } else {
      this.emit(i === 0 ? buf : buf.subarray(i));
    }
  }

  private emit(chunk: Buffer): void {
    if (this.state !== BODY || chunk.length === 0) return;
    if (!this.handler.onResponseData(chunk) && !this.paused) this.pause();
  }

  onEnd(): void {
    // A body delimited by the connection's end is complete now; anything else was cut short.
    if (this.state === BODY && this.head?.framing === 'close') this.complete(true);
    else this.onClosed(this.conn, undefined);
  }

  onClosed(conn: Connection | null, err: Error | undefined): void {
    if (this.state === DONE || conn !== this.conn) return;
    if (conn && !conn.connected) this.fail(new UpstreamError('UPSTREAM_CONNECT', 'cannot connect to the backend', err));
    else this.fail(new UpstreamError('UPSTREAM_RESET', 'the backend closed the connection before the response was complete', err));
  }

  /** `extra`: bytes followed the response, or the connection ended with it; either way it is not reused. */
  private complete(extra: boolean): void {
    if (this.state === DONE) return;
    this.state = DONE;
    const conn = this.conn;
    this.conn = null;
    if (conn) conn.exchange = null;
    const reusable = !extra && this.bodySent && this.head?.keepAlive === true;
    if (!this.bodySent) this.detachBody();
    if (conn && reusable) {
      conn.used = true;
      if (this.paused) conn.socket.resume();
    }
    this.pool.finished(conn, reusable);
    this.handler.onResponseEnd();
  }

  fail(err: UpstreamError): void {
    if (this.state === DONE) return;
    const conn = this.conn;
    // A kept-alive connection the backend closed while it sat idle fails before any answer: for a request
    // without a body that is safe to repeat, try once more on a new connection.
    const retry = err.code === 'UPSTREAM_RESET' && conn?.used === true && !this.answered && !this.retried && this.req.body === null && RETRYABLE_METHODS.has(this.req.method);
    this.conn = null;
    if (conn) conn.destroy();
    if (retry) {
      this.retried = true;
      this.state = QUEUED;
      this.pool.assign(this, true);
      return;
    }
    this.state = DONE;
    this.detachBody();
    this.pool.dequeue(this);
    this.pool.finished(null, false);
    this.handler.onResponseError(err);
  }

  checkDeadline(now: number): void {
    if (this.paused || now < this.deadline) return;
    if (this.state === QUEUED || this.state === WAIT_HEAD) this.fail(new UpstreamError('UPSTREAM_HEADERS_TIMEOUT', `no response head within ${this.req.timeoutMs} ms`));
    else if (this.state === BODY) this.fail(new UpstreamError('UPSTREAM_BODY_TIMEOUT', `the response body stalled for ${this.req.timeoutMs} ms`));
  }

  // --- UpstreamControl ---------------------------------------------------------------------------------

  pause(): void {
    if (this.paused || this.state === DONE) return;
    this.paused = true;
    this.conn?.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.deadline = Date.now() + this.req.timeoutMs;
    if (this.state !== DONE) this.conn?.socket.resume();
  }

  abort(): void {
    if (this.state === DONE) return;
    this.state = DONE;
    const conn = this.conn;
    this.conn = null;
    this.detachBody();
    this.pool.dequeue(this);
    if (conn) conn.destroy();
    this.pool.finished(null, false);
  }
}

function hasBareLf(buf: Buffer, from: number): boolean {
  for (let lf = buf.indexOf(10, from); lf !== -1; lf = buf.indexOf(10, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 13) return true;
  }
  return false;
}
