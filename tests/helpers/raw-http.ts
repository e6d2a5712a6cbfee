import { headerMap } from './backends.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

// ---- what a strict HTTP/1.1 server reads from a byte stream --------------------------------------------

/** One message node:http read from a client's byte stream. */
export interface ParsedRequest {
  /**
   * `request`: emitted as a request; `upgrade`: an upgrade (the bytes after its head are no longer HTTP);
   * `expectation-failed`: an Expect other than 100-continue, answered 417 by node:http and never given to the app.
   */
  readonly kind: 'request' | 'upgrade' | 'expectation-failed';
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
  /** Lowercase name → every value, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
  /** The body ended as its framing said. */
  readonly complete: boolean;
}

export interface ParseResult {
  readonly messages: readonly ParsedRequest[];
  /** The parser's error code when the stream stopped being HTTP (HPE_...), if it did. */
  readonly error: string | undefined;
}

export interface ReferenceParser {
  /**
   * What node:http, configured as Gatehouse's server is (same header limit, Host not required, an `upgrade`
   * listener), reads from `bytes` sent on one connection and then half-closed. The reference for what a
   * client said: every request Gatehouse forwards must be one of these.
   */
  parse(bytes: Buffer): Promise<ParseResult>;
  close(): Promise<void>;
}

interface Collecting {
  readonly messages: Array<{ kind: ParsedRequest['kind']; req: IncomingMessage; body: Buffer[]; complete: boolean }>;
  error: string | undefined;
  done: () => void;
}

/**
 * A node:http server that never answers (so a request with Connection: close stops nothing) and records what
 * its parser emits, per connection. Answering nothing, it reads as far into a pipelined stream as node:http
 * ever would: Gatehouse's own server, which answers, reads a prefix of it.
 */
export async function startReferenceParser(): Promise<ReferenceParser> {
  const byPort = new Map<number, Collecting>();
  const collectingFor = (socket: Socket) => byPort.get(socket.remotePort ?? -1);
  const server: Server = createServer({
    maxHeaderSize: 16_384,
    requireHostHeader: false,
    keepAliveTimeout: 120_000,
    headersTimeout: 120_000,
    requestTimeout: 0,
  });
  const track = (kind: ParsedRequest['kind'], req: IncomingMessage) => {
    const c = collectingFor(req.socket);
    const entry = { kind, req, body: [] as Buffer[], complete: kind !== 'request' };
    c?.messages.push(entry);
    return entry;
  };
  server.on('request', (req: IncomingMessage) => {
    const entry = track('request', req);
    req.on('data', (chunk: Buffer) => entry.body.push(chunk));
    req.on('end', () => {
      entry.complete = req.complete;
    });
    req.on('close', () => {
      entry.complete = req.complete;
    });
    req.on('error', () => {});
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    // What node:http does itself without this listener; recorded so responses still line up with requests.
    track('expectation-failed', req);
    // Read past its body now: queued behind requests this server never answers, the 417 would never finish,
    // and node:http drains a refused body only once its answer has.
    req.resume();
    res.writeHead(417);
    res.end();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    track('upgrade', req);
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const c = collectingFor(socket);
    if (c && c.error === undefined) c.error = err.code ?? err.message;
    socket.destroy();
  });
  server.on('connection', (socket: Socket) => {
    const key = socket.remotePort ?? -1;
    socket.once('close', () => {
      // The requests' own close events run first.
      setImmediate(() => byPort.get(key)?.done());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    parse(bytes) {
      return new Promise<ParseResult>((resolve, reject) => {
        const client = connect(port, '127.0.0.1');
        client.on('error', () => {});
        client.resume();
        const timer = setTimeout(() => {
          client.destroy();
          reject(new Error(`the reference parser did not finish reading ${JSON.stringify(bytes.toString('latin1').slice(0, 3000))}`));
        }, 10_000);
        client.once('connect', () => {
          const key = client.localPort ?? -1;
          const c: Collecting = {
            messages: [],
            error: undefined,
            done: () => {
              clearTimeout(timer);
              byPort.delete(key);
              client.destroy();
              resolve({
                error: c.error,
                messages: c.messages.map((m) => ({
                  kind: m.kind,
                  method: m.req.method ?? '',
                  url: m.req.url ?? '',
                  httpVersion: m.req.httpVersion,
                  rawHeaders: [...m.req.rawHeaders],
                  headers: headerMap(m.req.rawHeaders),
                  body: Buffer.concat(m.body),
                  complete: m.complete,
                })),
              });
            },
          };
          byPort.set(key, c);
          client.write(bytes);
          // Let every body byte reach the request stream before the end of input aborts what is unfinished.
          setTimeout(() => client.end(), 3);
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- responses as a raw client reads them ---------------------------------------------------------------

export interface RawResponse {
  readonly status: number;
  /** Lowercase name → every value. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
}

/**
 * Reads HTTP/1.1 responses off one raw connection, in order: interim 1xx skipped, bodies framed by
 * Content-Length, chunked, or the connection's close. `methodOf(i)` names the method of the request the
 * i-th response answers (a HEAD answer has no body).
 */
export class ResponseReader {
  readonly responses: RawResponse[] = [];
  /** Bytes that did not parse as a response (the reader stops there). */
  garbage: string | undefined;
  /** A 101 turned the connection into a tunnel: nothing after it is HTTP. */
  switched = false;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private readonly methodOf: (i: number) => string | undefined;
  constructor(methodOf: (i: number) => string | undefined) {
    this.methodOf = methodOf;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.parse();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.parse();
  }

  private parse(): void {
    while (this.buf.length > 0 && this.garbage === undefined && !this.switched) {
      const headEnd = this.buf.indexOf('\r\n\r\n');
      if (headEnd === -1) {
        if (this.ended) this.garbage = this.buf.toString('latin1').slice(0, 200);
        return;
      }
      const lines = this.buf.toString('latin1', 0, headEnd).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
      if (!m) {
        this.garbage = this.buf.toString('latin1').slice(0, 200);
        return;
      }
      const status = Number(m[1]);
      const headers = new Map<string, string[]>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).toLowerCase();
        const list = headers.get(name) ?? [];
        list.push(line.slice(colon + 1).trim());
        headers.set(name, list);
      }
      let at = headEnd + 4;
      if (status === 101) {
        this.switched = true;
        this.responses.push({ status, headers, body: Buffer.alloc(0) });
        return;
      }
      if (status >= 100 && status < 200) {
        this.buf = this.buf.subarray(at);
        continue;
      }
      const te = headers.get('transfer-encoding')?.join(',').toLowerCase();
      const cl = headers.get('content-length')?.[0];
      let body: Buffer;
      if (this.methodOf(this.responses.length) === 'HEAD' || status === 204 || status === 304) {
        body = Buffer.alloc(0);
      } else if (te !== undefined && /chunked\s*$/.test(te)) {
        const parts: Buffer[] = [];
        for (;;) {
          const lineEnd = this.buf.indexOf('\r\n', at);
          if (lineEnd === -1) return this.incomplete();
          const size = parseInt(this.buf.toString('latin1', at, lineEnd).split(';')[0] ?? '', 16);
          if (!Number.isFinite(size)) {
            this.garbage = `bad chunk size: ${this.buf.toString('latin1', at, lineEnd)}`;
            return;
          }
          at = lineEnd + 2;
          if (size === 0) {
            // Trailer fields, then the empty line.
            for (;;) {
              const e = this.buf.indexOf('\r\n', at);
              if (e === -1) return this.incomplete();
              const empty = e === at;
              at = e + 2;
              if (empty) break;
            }
            break;
          }
          if (this.buf.length < at + size + 2) return this.incomplete();
          parts.push(this.buf.subarray(at, at + size));
          at += size + 2;
        }
        body = Buffer.concat(parts);
      } else if (cl !== undefined) {
        const n = Number(cl);
        if (this.buf.length < at + n) return this.incomplete();
        body = this.buf.subarray(at, at + n);
        at += n;
      } else {
        if (!this.ended) return;
        body = this.buf.subarray(at);
        at = this.buf.length;
      }
      this.responses.push({ status, headers, body: Buffer.from(body) });
      this.buf = this.buf.subarray(at);
    }
  }

  private incomplete(): void {
    if (this.ended) this.garbage = `response cut short: ${this.buf.toString('latin1').slice(0, 200)}`;
  }
}
