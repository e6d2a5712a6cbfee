import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { ChunkedDecoder, ChunkedError } from './chunked.ts';
import { NO_BODY, RequestHeadError, serializeRequestHead, type RequestBody } from './request-head.ts';
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
  /** The request itself cannot be written as given (a byte not allowed where it stands, a body not matching its length). */
  | 'UPSTREAM_INVALID_REQUEST'
  | 'UPSTREAM_CONNECT'
  | 'UPSTREAM_RESET'
  | 'UPSTREAM_PROTOCOL'
  | 'UPSTREAM_HEADERS_TIMEOUT'
  | 'UPSTREAM_BODY_TIMEOUT'
  /** The consumer of the response read nothing for CONSUMER_STALL_MS: its connection is given back. */
  | 'UPSTREAM_CONSUMER_STALLED';

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  constructor(code: UpstreamErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

export interface UpstreamRequest {
  readonly method: string;
  /** The request target in origin-form. */
  readonly path: string;
  /**
   * [name, value, ...]. Host, Content-Length, Transfer-Encoding, Connection and Upgrade are the client's to
   * write (from `body`, the origin and the kind of request): a list naming any of them is refused, as is any
   * byte a field may not hold (request-head.ts).
   */
  readonly headers: readonly string[];
  readonly body: RequestBody;
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

/** Called asynchronously, never from inside request() or upgrade(). */
export interface UpstreamHandler {
  onResponseStart(head: ResponseHead): void;
  /** Returns false when the consumer is full: reading stops until control.resume(). */
  onResponseData(chunk: Buffer): boolean;
  onResponseEnd(): void;
  onResponseError(err: UpstreamError): void;
}

/** An upgrade's handler: the backend either switches protocols or answers as to any request. */
export interface UpgradeHandler extends UpstreamHandler {
  /**
   * The backend answered 101: `socket` is the caller's from now on (no longer the pool's, no timeout, no
   * listeners of the client's left on it), `rest` the bytes that came after the 101 head.
   */
  onUpgrade(head: ResponseHead, socket: Socket, rest: Buffer): void;
}

/** An upgrade request (RFC 9110 §7.8): no body; `protocol` goes in the Upgrade header the client writes. */
export interface UpstreamUpgradeRequest {
  readonly path: string;
  readonly headers: readonly string[];
  readonly protocol: string;
  /** Limit for the backend's answer to the handshake. */
  readonly timeoutMs: number;
}

export interface UpstreamPool {
  request(req: UpstreamRequest, handler: UpstreamHandler): UpstreamControl;
  /** A GET with Upgrade on a new connection of its own, which leaves the pool when the backend switches protocols. */
  upgrade(req: UpstreamUpgradeRequest, handler: UpgradeHandler): UpstreamControl;
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

/** Given to a request refused before anything was sent: its one callback is already on its way. */
class RefusedControl implements UpstreamControl {
  private aborted = false;
  constructor(handler: UpstreamHandler, err: UpstreamError) {
    queueMicrotask(() => {
      if (!this.aborted) handler.onResponseError(err);
    });
  }
  pause(): void {}
  resume(): void {}
  abort(): void {
    this.aborted = true;
  }
}

const NO_BYTES = Buffer.alloc(0);

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** How often deadlines are checked: timeouts fire up to this late. */
const TICK_MS = 50;
/**
 * How long a response may stay paused because its consumer (the client) reads nothing, as nginx's
 * send_timeout (60 s): a client that stops reading cannot hold a backend connection, and the pool's drain on
 * reload or shutdown, forever.
 */
const CONSUMER_STALL_MS = 60_000;

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
  /**
   * The latest TLS session the backend gave us: a new connection resumes it instead of a full handshake
   * (undici and Node's https.Agent keep such a cache too). Dropped when a connection fails its handshake.
   */
  private tlsSession: Buffer | undefined;

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
    return this.open(req.method, req.path, req.headers, req.body, undefined, req.timeoutMs, handler, undefined);
  }

  upgrade(req: UpstreamUpgradeRequest, handler: UpgradeHandler): UpstreamControl {
    return this.open('GET', req.path, req.headers, NO_BODY, req.protocol, req.timeoutMs, handler, handler);
  }

  /** The head is written and checked before anything else: a request it refuses never takes a connection. */
  private open(
    method: string,
    path: string,
    headers: readonly string[],
    body: RequestBody,
    protocol: string | undefined,
    timeoutMs: number,
    handler: UpstreamHandler,
    upgrader: UpgradeHandler | undefined,
  ): UpstreamControl {
    let head: string;
    try {
      head = serializeRequestHead(method, path, this.hostHeader, headers, body, protocol);
    } catch (err) {
      return new RefusedControl(handler, invalidRequest(err));
    }
    const ex = new Exchange(this, method, body, head, timeoutMs, handler, upgrader);
    this.inFlight++;
    this.startTimer();
    this.assign(ex);
    return ex;
  }

  /** Gives the exchange a connection: an idle one (unless it needs a fresh one), a new one, or a place in the queue. */
  assign(ex: Exchange): void {
    if (!ex.fresh) {
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
        const next = this.queue.length === 0 ? undefined : this.nextForReuse();
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

  /** The first queued exchange that may take a kept-alive connection: a queued upgrade or retry needs a new one. */
  private nextForReuse(): Exchange | undefined {
    const at = this.queue.findIndex((ex) => !ex.fresh);
    return at === -1 ? undefined : this.queue.splice(at, 1)[0];
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
    let socket: Socket;
    if (this.tls) {
      const tls = tlsConnect({
        host: this.host,
        port: this.port,
        servername: isIP(this.host) ? undefined : this.host,
        ALPNProtocols: ['http/1.1'],
        ...(this.tlsSession ? { session: this.tlsSession } : {}),
      });
      let established = false;
      tls.once('secureConnect', () => (established = true));
      tls.on('session', (session: Buffer) => {
        this.tlsSession = session;
      });
      tls.once('error', () => {
        if (!established) this.tlsSession = undefined;
      });
      socket = tls;
    } else {
      socket = netConnect({ host: this.host, port: this.port });
    }
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

function invalidRequest(err: unknown): UpstreamError {
  return new UpstreamError(
    'UPSTREAM_INVALID_REQUEST',
    err instanceof RequestHeadError ? err.message : 'the request cannot be written',
    err,
  );
}

/** One socket to the backend, with its listeners attached once for as long as the pool owns it. */
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
    socket.once('timeout', this.onTimeout);
    socket.once(tls ? 'secureConnect' : 'connect', this.onConnect);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onTimeout = (): void => {
    if (!this.connected) this.socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
  };

  private readonly onConnect = (): void => {
    this.connected = true;
    this.socket.setTimeout(0);
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.exchange) this.exchange.onData(chunk);
    // Bytes nobody asked for: whatever the backend meant, this connection is out of step.
    else this.destroy();
  };

  private readonly onEnd = (): void => {
    if (this.exchange) this.exchange.onEnd();
    else this.destroy();
  };

  private readonly onDrain = (): void => {
    this.exchange?.onDrain();
  };

  private readonly onError = (err: Error): void => {
    this.error = err;
  };

  private readonly onClose = (): void => {
    if (!this.gone) {
      this.gone = true;
      this.pool.forget(this);
    }
    this.exchange?.onClosed(this, this.error);
  };

  /** Keeps the backend's Keep-Alive hint when it is shorter than ours, with a second's margin. */
  hint(ms: number | undefined): void {
    if (ms !== undefined && ms - 1000 < this.idleLimitMs) this.idleLimitMs = Math.max(0, ms - 1000);
  }

  /**
   * The socket leaves the pool as it is (an upgraded tunnel): the pool's listeners come off, and the pool no
   * longer counts it. Whoever takes it must listen for 'error' at once.
   */
  release(): Socket {
    this.exchange = null;
    const { socket } = this;
    socket.off('timeout', this.onTimeout);
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('drain', this.onDrain);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
    socket.setTimeout(0);
    if (!this.gone) {
      this.gone = true;
      this.pool.forget(this);
    }
    return socket;
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
  private readonly method: string;
  private readonly body: RequestBody;
  /** The request head, serialized and checked once (request-head.ts); a retry writes the same bytes. */
  private readonly headText: string;
  private readonly timeoutMs: number;
  private readonly handler: UpstreamHandler;
  /** Set for an upgrade request: a 101 hands the socket to it. */
  private readonly upgrader: UpgradeHandler | undefined;
  private conn: Connection | null = null;
  private deadline: number;
  private head: ResponseHead | undefined;
  private headBuf: Buffer | null = null;
  private remaining = 0;
  private decoder: ChunkedDecoder | undefined;
  /** Some byte of a response arrived on this exchange's connection. */
  private answered = false;
  private bodySent: boolean;
  /** Body bytes written so far, against a declared length. */
  private bodyBytes = 0;
  private retried = false;
  /**
   * It must go on a new connection: an upgrade (about to become a tunnel, where a pooled connection may be half
   * closed) or a retry after a kept-alive connection failed.
   */
  fresh: boolean;
  private pausedAt = 0;
  private bodyListeners: { data: (chunk: Buffer) => void; end: () => void; close: () => void } | undefined;
  /** The chunked decoder's output, made only for chunked responses. */
  private decoded: ((chunk: Buffer) => void) | undefined;

  constructor(
    pool: OriginPool,
    method: string,
    body: RequestBody,
    headText: string,
    timeoutMs: number,
    handler: UpstreamHandler,
    upgrader: UpgradeHandler | undefined,
  ) {
    this.pool = pool;
    this.method = method;
    this.body = body;
    this.headText = headText;
    this.timeoutMs = timeoutMs;
    this.handler = handler;
    this.upgrader = upgrader;
    this.fresh = upgrader !== undefined;
    this.bodySent = bodyStream(body) === null;
    this.deadline = Date.now() + timeoutMs;
  }

  start(conn: Connection): void {
    this.conn = conn;
    conn.exchange = this;
    this.state = WAIT_HEAD;
    if (this.body.kind === 'buffer' && this.body.data.length > 0) {
      // One buffer, one write: cheaper than cork() + two writes + uncork() (a writev), and the backend gets the
      // request in one segment, as it would have from the client.
      const data = this.body.data;
      const headBytes = this.headText.length;
      const whole = Buffer.allocUnsafe(headBytes + data.length);
      whole.write(this.headText, 0, 'latin1');
      whole.set(data, headBytes);
      conn.socket.write(whole);
      return;
    }
    const stream = bodyStream(this.body);
    if (!stream) {
      conn.socket.write(this.headText, 'latin1');
      return;
    }
    // A body's first chunk usually came in the client's segment with the head, and flows a tick from now (the
    // stream's resume is queued before this uncork): held until then, head and chunk leave in one write, as the
    // client sent them. A chunk that comes later goes in its own write, the head having left on this tick.
    conn.socket.cork();
    conn.socket.write(this.headText, 'latin1');
    this.sendBody(stream);
    process.nextTick(uncork, conn.socket);
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
    if (!conn || this.state === DONE || this.bodySent) return;
    // A zero-length chunk would be written as the last-chunk and end the body early (RFC 9112 §7.1).
    if (chunk.length === 0) return;
    const socket = conn.socket;
    let ok: boolean;
    if (this.body.kind === 'chunked') {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      // Never one byte past the declared length: the backend would read it as the start of another request.
      if (this.body.kind !== 'length' || this.bodyBytes + chunk.length > this.body.length) {
        return this.fail(new UpstreamError('UPSTREAM_INVALID_REQUEST', 'request body longer than its Content-Length'));
      }
      this.bodyBytes += chunk.length;
      ok = socket.write(chunk);
    }
    if (!ok) body.pause();
    // The backend cannot be expected to answer before the body is whole: while it flows, the wait for the
    // response head counts from the latest chunk (a slow upload is the client's to bound, by requestTimeout).
    this.deadline = Date.now() + this.timeoutMs;
  }

  private onBodyEnd(): void {
    if (!this.conn || this.state === DONE || this.bodySent) return;
    if (this.body.kind === 'chunked') this.conn.socket.write('0\r\n\r\n', 'latin1');
    else if (this.body.kind === 'length' && this.bodyBytes !== this.body.length) {
      // The backend is still waiting for the rest: this connection can carry nothing else.
      return this.fail(new UpstreamError('UPSTREAM_INVALID_REQUEST', 'request body shorter than its Content-Length'));
    }
    this.bodySent = true;
    if (this.state === WAIT_HEAD) this.deadline = Date.now() + this.timeoutMs;
  }

  onDrain(): void {
    if (!this.bodySent) bodyStream(this.body)?.resume();
  }

  private detachBody(): void {
    const body = bodyStream(this.body);
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
          if (hasBareLf(buf, Math.max(i, searchFrom)))
            return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', 'bare LF in the response head'));
          this.headBuf = i === 0 ? buf : buf.subarray(i);
          return;
        }
        let head: ResponseHead;
        try {
          head = parseResponseHead(buf.toString('latin1', i, end), this.method === 'HEAD');
        } catch (err) {
          return this.fail(
            new UpstreamError('UPSTREAM_PROTOCOL', err instanceof ResponseHeadError ? err.message : 'unparsable response head', err),
          );
        }
        i = end + 4;
        searchFrom = 0;
        if (head.status === 101) {
          // Only an upgrade asked for it; anywhere else a 101 would turn a pooled connection into someone's tunnel.
          if (!this.upgrader) return this.fail(new UpstreamError('UPSTREAM_PROTOCOL', 'unexpected 101 Switching Protocols'));
          return this.handOver(head, i < buf.length ? buf.subarray(i) : NO_BYTES);
        }
        if (head.status >= 200) {
          if (head.framing === 'chunked' && i < buf.length && !this.chunkedStartIsValid(buf, i)) return;
          this.begin(head);
          break;
        }
        // Other 1xx: interim (100 Continue, 103 Early Hints); the final answer follows.
      }
      // The handler may have aborted from onResponseStart (its client went away).
      if ((this.state as number) !== BODY) return;
      if (this.head?.framing === 'none') return this.complete(i < buf.length);
    } else if (this.state !== BODY) {
      return;
    }
    this.deadline = Date.now() + this.timeoutMs;
    if (i < buf.length) this.readBody(buf, i);
  }

  /**
   * A chunked body's first bytes usually arrive with the head: they are checked before the status line is
   * relayed, so a malformed size line, extension or trailer there is answered 502 rather than cut short. Kept out
   * of onData, the hottest function of the proxy, which V8 optimises better small.
   */
  private chunkedStartIsValid(buf: Buffer, i: number): boolean {
    try {
      new ChunkedDecoder().push(buf, i, ignore);
      return true;
    } catch (err) {
      this.fail(new UpstreamError('UPSTREAM_PROTOCOL', err instanceof ChunkedError ? err.message : 'invalid chunked body', err));
      return false;
    }
  }

  private handOver(head: ResponseHead, rest: Buffer): void {
    const conn = this.conn as Connection;
    this.state = DONE;
    this.conn = null;
    const socket = conn.release();
    // Over for the pool, with no connection to give back: the tunnel is the upgrader's now.
    this.pool.finished(null, false);
    (this.upgrader as UpgradeHandler).onUpgrade(head, socket, rest);
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
    // A declined upgrade leaves a connection the backend may still treat as about to switch: never reused.
    const reusable = !extra && this.bodySent && this.head?.keepAlive === true && !this.upgrader;
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
    const retry =
      err.code === 'UPSTREAM_RESET' &&
      conn?.used === true &&
      !this.answered &&
      !this.retried &&
      bodyStream(this.body) === null &&
      RETRYABLE_METHODS.has(this.method);
    this.conn = null;
    if (conn) conn.destroy();
    if (retry) {
      this.retried = true;
      this.fresh = true;
      this.state = QUEUED;
      this.pool.assign(this);
      return;
    }
    this.state = DONE;
    this.detachBody();
    this.pool.dequeue(this);
    this.pool.finished(null, false);
    this.handler.onResponseError(err);
  }

  checkDeadline(now: number): void {
    if (this.paused) {
      if (now - this.pausedAt >= CONSUMER_STALL_MS)
        this.fail(new UpstreamError('UPSTREAM_CONSUMER_STALLED', `the response was not read for ${CONSUMER_STALL_MS} ms`));
      return;
    }
    if (now < this.deadline) return;
    if (this.state === QUEUED || this.state === WAIT_HEAD)
      this.fail(new UpstreamError('UPSTREAM_HEADERS_TIMEOUT', `no response head within ${this.timeoutMs} ms`));
    else if (this.state === BODY)
      this.fail(new UpstreamError('UPSTREAM_BODY_TIMEOUT', `the response body stalled for ${this.timeoutMs} ms`));
  }

  // --- UpstreamControl ---------------------------------------------------------------------------------

  pause(): void {
    if (this.paused || this.state === DONE) return;
    this.paused = true;
    this.pausedAt = Date.now();
    this.conn?.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.deadline = Date.now() + this.timeoutMs;
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

function uncork(socket: Socket): void {
  socket.uncork();
}

/** The stream to read a body from, or null when nothing is to be sent after the head. */
function bodyStream(body: RequestBody): Readable | null {
  if (body.kind === 'none' || body.kind === 'buffer') return null;
  if (body.kind === 'length' && body.length === 0) return null;
  return body.stream;
}

function ignore(): void {}

function hasBareLf(buf: Buffer, from: number): boolean {
  for (let lf = buf.indexOf(10, from); lf !== -1; lf = buf.indexOf(10, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 13) return true;
  }
  return false;
}
