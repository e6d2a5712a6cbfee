import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

/** What a backend saw: the request line and headers exactly as they arrived, and how the body ended. */
export interface RecordedRequest {
  readonly method: string;
  /** The raw request-target, byte for byte. */
  readonly url: string;
  readonly rawHeaders: readonly string[];
  /** Lowercase name → every value sent under that name, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  bodySize: number;
  /** The body arrived whole. */
  complete: boolean;
  /** The connection went away before the backend answered (Gatehouse cancelled the request). */
  aborted: boolean;
}

export interface TestBackend {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly requests: RecordedRequest[];
  /** The last request, failing loudly when there was none. */
  last(): RecordedRequest;
  /** Resolves once `n` requests have arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves once request `index` was aborted or its body completed. */
  waitForEnd(index: number, timeoutMs?: number): Promise<RecordedRequest>;
  /** Resolves once request `index` was aborted (its connection went away before the answer). */
  waitForAbort(index: number, timeoutMs?: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

/** First value of a header in a recorded request. */
export function header(rec: RecordedRequest, name: string): string | undefined {
  return rec.headers.get(name.toLowerCase())?.[0];
}

/** Lowercase name → every value sent under that name, in order, from a flat [name, value, ...] list. */
export function headerMap(raw: readonly string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const key = (raw[i] as string).toLowerCase();
    map.set(key, [...(map.get(key) ?? []), raw[i + 1] as string]);
  }
  return map;
}

function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/**
 * Answers a request after its body has been counted. Return true from a custom handler when it took over the
 * response; the body is then counted without being buffered.
 */
export type BackendHandler = (req: IncomingMessage, res: ServerResponse, rec: RecordedRequest) => boolean | void;

/** The default answer: JSON describing the request (method, raw url, raw headers, body size). */
export function echo(res: ServerResponse, rec: RecordedRequest): void {
  const text = JSON.stringify({ method: rec.method, url: rec.url, rawHeaders: rec.rawHeaders, bodySize: rec.bodySize });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Listens on 127.0.0.1:0 and keeps the server's open connections, so that `close` ends them at once instead of
 * waiting for kept-alive ones to idle out.
 */
async function listenOnLoopback(server: Server): Promise<{ port: number; url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A real loopback backend that records every request. Without a handler (or when the handler returns
 * nothing) it drains the body and answers with `echo`.
 */
export async function startBackend(handler?: BackendHandler): Promise<TestBackend> {
  const requests: RecordedRequest[] = [];
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const rec: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: [...req.rawHeaders],
      headers: headerMap(req.rawHeaders),
      bodySize: 0,
      complete: false,
      aborted: false,
    };
    requests.push(rec);
    req.on('data', (chunk: Buffer) => {
      rec.bodySize += chunk.length;
    });
    req.on('end', () => {
      rec.complete = true;
    });
    res.on('close', () => {
      if (!res.writableFinished) rec.aborted = true;
    });
    if (handler?.(req, res, rec) === true) return;
    req.on('end', () => echo(res, rec));
    req.resume();
  });
  return {
    ...(await listenOnLoopback(server)),
    server,
    requests,
    last() {
      const rec = requests.at(-1);
      if (!rec) throw new Error('the backend received no request');
      return rec;
    },
    waitForRequests: (n, timeoutMs = 5000) => until(() => requests.length >= n, timeoutMs, `${n} backend requests`),
    async waitForEnd(index, timeoutMs = 5000) {
      await until(
        () => requests[index] !== undefined && (requests[index].aborted || requests[index].complete),
        timeoutMs,
        `request ${index} to end`,
      );
      return requests[index] as RecordedRequest;
    },
    async waitForAbort(index, timeoutMs = 5000) {
      await until(() => requests[index]?.aborted === true, timeoutMs, `request ${index} to be aborted`);
      return requests[index] as RecordedRequest;
    },
  };
}

/** Sends Server-Sent Events on any path: `count` events `gapMs` apart, then ends. */
export function startSseBackend(options: { count: number; gapMs: number }): Promise<TestBackend> {
  return startBackend((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let sent = 0;
    const next = () => {
      if (res.destroyed) return;
      res.write(`id: ${sent}\nevent: tick\ndata: {"n":${sent}}\n\n`);
      sent++;
      if (sent < options.count) setTimeout(next, options.gapMs);
      else res.end();
    };
    next();
    return true;
  });
}

/** Waits `delayMs` before answering with echo (or never, with Infinity), recording whether Gatehouse gave up. */
export function startSlowBackend(delayMs: number): Promise<TestBackend> {
  return startBackend((req, res, rec) => {
    req.resume();
    if (delayMs === Infinity) return true;
    const timer = setTimeout(() => echo(res, rec), delayMs);
    res.on('close', () => clearTimeout(timer));
    return true;
  });
}

/** What a WebSocket backend saw on its upgrade request. */
export interface RecordedUpgrade {
  readonly url: string;
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly protocol: string;
}

export interface TestWsBackend {
  readonly url: string;
  readonly port: number;
  readonly upgrades: RecordedUpgrade[];
  /** Server-side sockets, in connection order. */
  readonly sockets: WebSocket[];
  /** Plain (non-upgrade) HTTP requests it received. */
  readonly httpRequests: number;
  /** TCP connections it accepted, upgraded or not. */
  readonly connections: number;
  waitForSocket(index: number, timeoutMs?: number): Promise<WebSocket>;
  close(): Promise<void>;
}

/**
 * A WebSocket echo backend: echoes text and binary frames unchanged (binary stays binary), answers pings
 * (ws does), picks the first offered subprotocol, and on a text message "close:<code>:<reason>" closes with
 * that code. `reject` answers the upgrade with a plain HTTP response instead.
 */
export async function startWsBackend(options: { reject?: (req: IncomingMessage, socket: Socket) => boolean } = {}): Promise<TestWsBackend> {
  const upgrades: RecordedUpgrade[] = [];
  const sockets: WebSocket[] = [];
  let httpRequests = 0;
  let connections = 0;
  const server = createServer((_req, res) => {
    httpRequests++;
    res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade required');
  });
  server.on('connection', () => {
    connections++;
  });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (protocols) => [...protocols][0] ?? false,
  });
  server.on('upgrade', (req, socket: Socket, head) => {
    upgrades.push({
      url: req.url ?? '',
      headers: headerMap(req.rawHeaders),
      protocol: String(req.headers['sec-websocket-protocol'] ?? ''),
    });
    if (options.reject?.(req, socket)) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws);
      ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          const m = /^close:(\d+):(.*)$/.exec(data.toString());
          if (m) return ws.close(Number(m[1]), m[2]);
        }
        ws.send(data, { binary: isBinary });
      });
    });
  });
  const loopback = await listenOnLoopback(server);
  return {
    ...loopback,
    upgrades,
    sockets,
    get httpRequests() {
      return httpRequests;
    },
    get connections() {
      return connections;
    },
    async waitForSocket(index, timeoutMs = 5000) {
      await until(() => sockets[index] !== undefined, timeoutMs, `backend WebSocket ${index}`);
      return sockets[index] as WebSocket;
    },
    close: () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      return loopback.close();
    },
  };
}

/** A loopback port with nothing listening on it (bound, then closed). */
export async function closedPortUrl(): Promise<string> {
  const { url, close } = await listenOnLoopback(createServer());
  await close();
  return url;
}

// ---- clients that can say what fetch refuses to (a chosen Host, raw paths, duplicate headers) ----

export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  json(): Record<string, unknown>;
}

/**
 * One request through node:http with the path sent as given (no normalisation) and headers as a flat
 * [name, value, ...] list, so repeated names and a chosen Host go out exactly as written.
 */
export function send(
  baseUrl: string,
  options: { method?: string; path: string; headers?: readonly string[]; body?: string | Buffer; timeoutMs?: number },
): Promise<RawResponse> {
  const base = new URL(baseUrl);
  const headers = [...(options.headers ?? [])];
  if (!headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) headers.push('Host', base.host);
  if (options.body !== undefined) headers.push('Content-Length', String(Buffer.byteLength(options.body)));
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: base.hostname,
      port: base.port,
      method: options.method ?? 'GET',
      path: options.path,
      headers,
      setHost: false,
      agent: false,
    });
    const timer = setTimeout(() => req.destroy(new Error(`no response to ${options.path} in time`)), options.timeoutMs ?? 10_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body,
          json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
        });
      });
      res.on('error', reject);
    });
    req.end(options.body);
  });
}

/**
 * Writes raw bytes to a fresh TCP connection and returns the first response (status, headers, body read
 * by Content-Length or to the close), for requests node:http would refuse to send.
 */
/**
 * Writes `bytes` on one raw connection and collects everything received until the server closes it (rejects if it
 * stays open past `timeoutMs`): for what a server does to a whole pipelined sequence, every answer and the close.
 */
export function exchangeUntilClose(baseUrl: string, bytes: string, timeoutMs = 5000): Promise<{ received: string; ms: number }> {
  const { hostname, port } = new URL(baseUrl);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection stayed open: ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`));
    }, timeoutMs);
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(chunks).toString('latin1'), ms: Date.now() - started });
    });
    socket.write(bytes, 'latin1');
  });
}

/** The status codes of every response in `received`, in order. */
export function statusesIn(received: string): number[] {
  return [...received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

export function sendRaw(
  baseUrl: string,
  bytes: string | Buffer,
  timeoutMs = 5000,
): Promise<{ status: number; head: string; body: string; raw: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response in ${timeoutMs} ms: ${data.toString('latin1').slice(0, 300)}`));
    }, timeoutMs);
    const tryParse = (closed: boolean) => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) {
        if (closed) {
          clearTimeout(timer);
          resolve({ status: 0, head: '', body: '', raw: text });
        }
        return;
      }
      const head = text.slice(0, end);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const body = text.slice(end + 4);
      if (length ? body.length >= Number(length[1]) : closed) {
        clearTimeout(timer);
        socket.destroy();
        resolve({
          status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0),
          head,
          body: length ? body.slice(0, Number(length[1])) : body,
          raw: text,
        });
      }
    };
    socket.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('close', () => tryParse(true));
    socket.on('error', () => tryParse(true));
    socket.write(bytes);
  });
}

/** A WebSocket client opened through Gatehouse, or the HTTP answer that refused it. */
export type WsOutcome =
  | { readonly ok: true; readonly ws: WebSocket }
  | {
      readonly ok: false;
      readonly status: number;
      readonly body: string;
      readonly headers: Readonly<Record<string, string | string[] | undefined>>;
    };

/** Opens a WebSocket (ws client, no compression) and resolves with it, or with the refusal status and body. */
export function openWs(
  url: string,
  options: { protocols?: string[]; headers?: Record<string, string>; origin?: string } = {},
): Promise<WsOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], {
      perMessageDeflate: false,
      headers: options.headers ?? {},
      ...(options.origin !== undefined ? { origin: options.origin } : {}),
      handshakeTimeout: 5000,
    });
    ws.once('open', () => resolve({ ok: true, ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ ok: false, status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    ws.once('error', reject);
  });
}

/** The next message on a client socket, with whether it was binary. */
export function nextMessage(ws: WebSocket, timeoutMs = 5000): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no WebSocket message in time')), timeoutMs);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      resolve({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary });
    });
  });
}

/** Resolves with the close code and reason once the socket is closed. */
export function closed(ws: WebSocket, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === ws.CLOSED) return resolve({ code: 1006, reason: '' });
    const timer = setTimeout(() => reject(new Error('WebSocket did not close in time')), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}
