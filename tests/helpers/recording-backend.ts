import { headerMap } from './backends.ts';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * One request exactly as the backend's own HTTP parser (node:http) read it from the bytes Gatehouse wrote:
 * whatever a kept-alive upstream connection carried, each request the backend parsed is one record here.
 */
export interface BackendRecord {
  /** Arrival order over the backend's lifetime. */
  readonly seq: number;
  /** Which backend-side TCP connection carried it (1, 2, ... in accept order). */
  readonly connection: number;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  /** Lowercase name → every value, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** The nonce found in the request-target (the `noncePattern` option), if any. */
  readonly nonce: string | undefined;
  /** The request head as parsed, in bytes (request line, fields as `name: value`, CRLFs): what it weighed on the wire. */
  readonly headLength: number;
  /** Body bytes received so far. */
  readonly body: Buffer[];
  /** The body ended as its framing said (node:http's `req.complete`). */
  complete: boolean;
  /** The backend's answer was written whole. */
  answered: boolean;
  /** Its response is over (written, or the connection went away) and its body is over or cannot continue. */
  settled: boolean;
}

export interface RecordingBackend {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Every request parsed, in arrival order. */
  readonly records: BackendRecord[];
  /** Closes every connection Gatehouse holds to this backend; resolves once they are all gone. */
  dropConnections(): Promise<void>;
  /**
   * Resolves once every record is settled and nothing new arrived for `quietMs`; after `timeoutMs` resolves
   * with the records still open instead of waiting longer.
   */
  settle(quietMs: number, timeoutMs: number): Promise<BackendRecord[]>;
  close(): Promise<void>;
}

export function bodyOf(rec: BackendRecord): Buffer {
  return Buffer.concat(rec.body);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The JSON every answer carries: enough for a client to tell which request, from whom, with what body, it answers. */
export interface RecordedAnswer {
  readonly recorder: true;
  readonly nonce: string | null;
  readonly method: string;
  readonly url: string;
  readonly xProbe: readonly string[];
  readonly sub: readonly string[];
  readonly authorization: readonly string[];
  readonly bodyLength: number;
  readonly bodySha256: string;
  /** The body itself (latin1), when the request asked for it with `echo=1`. */
  readonly body?: string;
}

/**
 * A loopback backend that records every request its node:http parser reads, and answers each with a
 * RecordedAnswer (header `x-recorded-nonce` names the nonce). The request-target's query steers the
 * answer: `d=<ms>` waits before answering (so answers on different connections interleave), `early=1`
 * answers before reading the body, `chunked=1` answers with a chunked body, `echo=1` includes the body.
 */
export async function startRecordingBackend(options: { noncePattern: RegExp }): Promise<RecordingBackend> {
  const records: BackendRecord[] = [];
  const sockets = new Set<Socket>();
  const socketIds = new WeakMap<Socket, number>();
  const pending = new Map<Socket, Set<() => void>>();
  let connections = 0;
  let lastArrival = Date.now();
  // requireHostHeader off: a request without Host is recorded (and judged by the test) rather than answered 400 unseen.
  const server = createServer(
    { keepAliveTimeout: 120_000, headersTimeout: 120_000, requestTimeout: 0, requireHostHeader: false },
    (req: IncomingMessage, res: ServerResponse) => {
      lastArrival = Date.now();
      const url = req.url ?? '';
      let headLength = `${req.method ?? ''} ${url} HTTP/${req.httpVersion}\r\n`.length + 2;
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        headLength += (req.rawHeaders[i] as string).length + 2 + (req.rawHeaders[i + 1] as string).length + 2;
      const rec: BackendRecord = {
        seq: records.length,
        connection: socketIds.get(req.socket) ?? 0,
        method: req.method ?? '',
        url,
        rawHeaders: [...req.rawHeaders],
        headers: headerMap(req.rawHeaders),
        nonce: options.noncePattern.exec(url)?.[0],
        headLength,
        body: [],
        complete: false,
        answered: false,
        settled: false,
      };
      records.push(rec);
      const query = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
      const delay = Math.min(Number(query.get('d') ?? 0) || 0, 5_000);
      const early = query.get('early') === '1';
      let responseOver = false;
      let bodyOver = false;
      const settle = () => {
        if (responseOver && bodyOver) {
          rec.settled = true;
          pending.get(req.socket)?.delete(gone);
        }
      };
      // A request answered early and cut short by its connection ends with no event of its own (node:http
      // forgets a request once its response is done): the connection's close settles it.
      const gone = () => {
        responseOver = true;
        bodyOver = true;
        settle();
      };
      pending.get(req.socket)?.add(gone);
      const answer = () => {
        const body = bodyOf(rec);
        const reply: RecordedAnswer = {
          recorder: true,
          nonce: rec.nonce ?? null,
          method: rec.method,
          url: rec.url,
          xProbe: rec.headers.get('x-probe') ?? [],
          sub: rec.headers.get('x-user-sub') ?? [],
          authorization: rec.headers.get('authorization') ?? [],
          bodyLength: body.length,
          bodySha256: sha256(body),
          ...(query.get('echo') === '1' ? { body: body.toString('latin1') } : {}),
        };
        const text = Buffer.from(JSON.stringify(reply));
        const send = () => {
          if (res.destroyed) return;
          if (query.get('chunked') === '1') {
            res.writeHead(200, { 'content-type': 'application/json', 'x-recorded-nonce': rec.nonce ?? '-' });
            const half = text.length >> 1;
            res.write(text.subarray(0, half));
            res.end(text.subarray(half));
          } else {
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length, 'x-recorded-nonce': rec.nonce ?? '-' });
            res.end(text);
          }
        };
        if (delay > 0) {
          const timer = setTimeout(send, delay);
          res.once('close', () => clearTimeout(timer));
        } else {
          send();
        }
      };
      res.once('finish', () => {
        rec.answered = true;
      });
      res.once('close', () => {
        responseOver = true;
        settle();
      });
      req.on('data', (chunk: Buffer) => rec.body.push(chunk));
      req.once('end', () => {
        rec.complete = req.complete;
        bodyOver = true;
        settle();
        if (!early) answer();
      });
      req.once('close', () => {
        rec.complete = req.complete;
        bodyOver = true;
        settle();
      });
      req.on('error', () => {});
      if (early) answer();
    },
  );
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    socketIds.set(s, ++connections);
    pending.set(s, new Set());
    s.on('close', () => {
      sockets.delete(s);
      for (const settle of [...(pending.get(s) ?? [])]) settle();
      pending.delete(s);
    });
  });
  server.on('clientError', (_err, socket: Socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    records,
    async dropConnections() {
      for (const s of sockets) s.destroy();
      while (sockets.size > 0) await sleep(1);
    },
    async settle(quietMs, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const open = records.filter((r) => !r.settled);
        if (open.length === 0 && Date.now() - lastArrival >= quietMs) return [];
        if (Date.now() > deadline) return open;
        await sleep(Math.min(5, quietMs));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
