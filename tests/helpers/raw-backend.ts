import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A backend on raw sockets that answers each request with what a script for its path writes: what a careless or
 * hostile backend can send, byte for byte. Two paths behave on their own: `POST /early` is answered before its
 * body is read (the connection stays open), and after `/poison` the connection drops the next request it carries
 * without a word (a keep-alive close race). Unknown paths get an empty 404.
 */

export interface Seen {
  readonly conn: number;
  readonly method: string;
  readonly path: string;
  readonly headers: string;
}

export type Script = (socket: Socket, seen: Seen) => void;

const ok = (body: string) => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

export interface RawBackend {
  readonly url: string;
  readonly seen: Seen[];
  close(): Promise<void>;
}

export async function startRawBackend(scripts: Readonly<Record<string, Script>>): Promise<RawBackend> {
  const seen: Seen[] = [];
  /** A connection marked here drops the next request it carries without a word: a keep-alive close race. */
  const poisoned = new Set<number>();
  const sockets = new Set<Socket>();
  let nextConn = 1;
  const server: Server = createServer((socket) => {
    const conn = nextConn++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    const answeredEarly = new Set<number>();
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const headText = buf.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headText)?.[1] ?? 0);
        if (headText.startsWith('POST /early ') && !answeredEarly.has(conn)) {
          // Answers before reading the body, and leaves the connection open: the rest of the body is still to come.
          answeredEarly.add(conn);
          seen.push({ conn, method: 'POST', path: '/early', headers: headText });
          socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo long');
        }
        if (buf.length < end + 4 + length) return;
        buf = buf.subarray(end + 4 + length);
        const [method = '', path = ''] = (headText.split('\r\n')[0] ?? '').split(' ');
        if (path === '/early') continue;
        const request = { conn, method, path, headers: headText };
        seen.push(request);
        if (poisoned.has(conn)) {
          socket.destroy();
          return;
        }
        if (path === '/poison') {
          poisoned.add(conn);
          socket.write(ok('poisoned'));
          continue;
        }
        const script = scripts[path];
        if (script) script(socket, request);
        else socket.write('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
