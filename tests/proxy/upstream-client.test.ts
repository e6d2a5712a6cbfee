import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { startRawBackend, type Script } from '../helpers/raw-backend.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml, startBareGatehouse, useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * Gatehouse's HTTP/1.1 client (src/proxy/upstream/) against a backend that writes raw bytes: what a
 * careless or hostile backend can send, and what keep-alive reuse must survive. Every refused framing
 * answers 502 and never leaves a desynchronised connection in the pool.
 */

const ok = (body: string, extra = '') =>
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

const SCRIPTS: Record<string, Script> = {
  '/ok': (s) => s.write(ok('ok')),
  '/cl-te': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
  '/two-cl': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'),
  '/space-colon': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nab'),
  '/fold': (s) => s.write('HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nab'),
  '/xchunked': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\nab\r\n0\r\n\r\n'),
  '/bare-lf': (s) => s.write('HTTP/1.1 200 OK\nContent-Length: 2\n\nab'),
  '/huge-head': (s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\nab`),
  '/unasked-101': (s) => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  // A second response glued after the first: if it were left in the pool, the next request would get it.
  '/smuggle': (s) => s.write(`${ok('ok')}${ok('smuggled')}`),
  '/early-hints': (s) => s.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n${ok('final')}`),
  '/http10': (s) => {
    s.write('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the connection ends');
    s.end();
  },
  '/chunked': (s) =>
    s.write(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n',
    ),
  // The malformed chunk comes in a later segment, after the status line was relayed (one arriving with the head is answered 502).
  '/bad-chunk': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => s.write('ZZ\r\n'), 30);
  },
  '/dribble': (s) => {
    const bytes = Buffer.from(ok('one byte at a time', 'x-dribble: yes\r\n'));
    let i = 0;
    const t = setInterval(() => {
      if (s.destroyed || i >= bytes.length) return clearInterval(t);
      s.write(bytes.subarray(i, ++i));
    }, 1);
  },
  '/close': (s) => s.write(ok('closing', 'connection: close\r\n')),
  '/hop': (s) => s.write(ok('hop', 'connection: x-internal\r\nx-internal: secret\r\nkeep-alive: timeout=5\r\nx-kept: yes\r\n')),
};

describe('upstream HTTP/1.1 client against a raw backend', () => {
  const proxy = useBareProxy({ backend: () => startRawBackend(SCRIPTS), mapping: { timeoutMs: 3000 } });

  const get = (path: string, method = 'GET', body?: string) =>
    send(proxy.url, { method, path: `/api${path}`, ...(body === undefined ? {} : { body }) });
  const lastSeen = (path: string) => [...proxy.backend.seen].reverse().find((s) => s.path === path);
  /** The connection that carried `path` is not reused: the next request reaches the backend on another one. */
  const expectDroppedAfter = async (path: string) => {
    const droppedConn = lastSeen(path)?.conn;
    expect(droppedConn).toBeDefined();
    const next = await get('/ok');
    expect(next.body.toString()).toBe('ok');
    expect(lastSeen('/ok')?.conn).not.toBe(droppedConn);
  };

  it('reuses one kept-alive connection for requests in sequence, and sends Host as the backend origin', async () => {
    const conns = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const res = await get('/ok');
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('ok');
      conns.add(lastSeen('/ok')?.conn ?? 0);
    }
    expect(conns.size).toBe(1);
    expect(lastSeen('/ok')?.headers).toContain(`\r\nhost: ${new URL(proxy.backend.url).host}\r\n`);
  });

  it.each([
    ['Content-Length together with Transfer-Encoding', '/cl-te'],
    ['two different Content-Length values', '/two-cl'],
    ['a space before the colon', '/space-colon'],
    ['an obs-fold line', '/fold'],
    ['an unknown Transfer-Encoding', '/xchunked'],
    ['bare LF line ends', '/bare-lf'],
    ['a head over 16 KiB', '/huge-head'],
    ['a 101 nobody asked for', '/unasked-101'],
  ])('%s → 502 bad_gateway, and the next request gets a fresh connection', async (_label, path) => {
    expectError(await get(path), 502, 'bad_gateway', path);
    await expectDroppedAfter(path);
  });

  it('bytes after a complete response are never served to the next request: the connection is dropped', async () => {
    const first = await get('/smuggle');
    expect(first.status).toBe(200);
    expect(first.body.toString()).toBe('ok');
    await expectDroppedAfter('/smuggle');
  });

  it('skips 103 Early Hints and relays the final response', async () => {
    const res = await get('/early-hints');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('final');
  });

  it('an HTTP/1.0 body delimited by the connection end arrives whole', async () => {
    const res = await get('/http10');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('until the connection ends');
  });

  it('decodes a chunked body with extensions and trailers', async () => {
    const res = await get('/chunked');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello, world');
    expect(res.headers['transfer-encoding']).toBe('chunked'); // re-framed by Gatehouse for its own client
  });

  it('a malformed chunk after the status line cuts the client response short instead of completing it', async () => {
    await expect(get('/bad-chunk')).rejects.toThrow();
    expect((await get('/ok')).body.toString()).toBe('ok');
  });

  it('a response written one byte at a time is parsed whole', async () => {
    const res = await get('/dribble');
    expect(res.status).toBe(200);
    expect(res.headers['x-dribble']).toBe('yes');
    expect(res.body.toString()).toBe('one byte at a time');
  });

  it('Connection: close from the backend: the next request opens a new connection', async () => {
    expect((await get('/close')).body.toString()).toBe('closing');
    await expectDroppedAfter('/close');
  });

  it('drops hop-by-hop response headers and those the backend names in Connection', async () => {
    const res = await get('/hop');
    expect(res.status).toBe(200);
    expect(res.headers['x-internal']).toBeUndefined();
    expect(res.headers['x-kept']).toBe('yes');
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
  });

  it('an answer before the request body was sent whole is relayed, and that connection is not reused', async () => {
    // The client declares 64 KiB and sends 1 KiB; the backend answers 413 at once; only then does the rest follow.
    const u = new URL(proxy.url);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: '/api/early',
          headers: { 'content-length': String(64 * 1024) },
          agent: false,
        },
        (r) => {
          let body = '';
          r.on('data', (c: Buffer) => {
            body += c.toString();
          });
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          req.end(Buffer.alloc(63 * 1024, 0x62));
        },
      );
      req.on('error', reject);
      req.write(Buffer.alloc(1024, 0x61));
    });
    expect(res).toEqual({ status: 413, body: 'too long' });
    await expectDroppedAfter('/early');
  });

  it('a GET on a kept-alive connection the backend dropped is retried once on a new connection', async () => {
    expect((await get('/poison')).body.toString()).toBe('poisoned');
    const poisonedConn = lastSeen('/poison')?.conn;
    const before = proxy.backend.seen.filter((s) => s.path === '/ok').length;
    const res = await get('/ok');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
    const oks = proxy.backend.seen.filter((s) => s.path === '/ok').slice(before);
    expect(oks).toHaveLength(2);
    expect(oks[0]?.conn).toBe(poisonedConn);
    expect(oks[1]?.conn).not.toBe(poisonedConn);
  });

  it('a POST on such a connection is not repeated (the backend may have acted on it): 502 bad_gateway', async () => {
    expect((await get('/poison')).body.toString()).toBe('poisoned');
    const before = proxy.backend.seen.filter((s) => s.path === '/ok').length;
    expectError(await get('/ok', 'POST', 'payload'), 502, 'bad_gateway');
    expect(proxy.backend.seen.filter((s) => s.path === '/ok').length - before).toBe(1);
  });
});

describe('upstream HTTPS', () => {
  const cert = readFileSync(fileURLToPath(new URL('../fixtures/tls/backend.crt', import.meta.url)));
  const key = readFileSync(fileURLToPath(new URL('../fixtures/tls/backend.key', import.meta.url)));
  let server: HttpsServer;
  let origin: string;
  let hostSeen: string | undefined;
  const handshakes: boolean[] = [];

  beforeAll(async () => {
    server = createHttpsServer({ cert, key }, (req, res) => {
      hostSeen = req.headers.host;
      // A backend that closes after each answer makes every request open a new TLS connection.
      res.writeHead(200, { 'content-type': 'text/plain', ...(req.url?.endsWith('/close') ? { connection: 'close' } : {}) });
      res.end(`tls ${req.url}`);
    });
    server.on('secureConnection', (socket) => handshakes.push(socket.isSessionReused()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it('refuses a backend certificate no CA vouches for: 502 bad_gateway', async () => {
    const gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', backend: origin, auth: 'none' }]));
    try {
      expectError(await send(gh.url, { path: '/api/x' }), 502, 'bad_gateway');
    } finally {
      await gh.close();
    }
  });

  it('relays over TLS when the CA is trusted (NODE_EXTRA_CA_CERTS, as an operator would set it)', async () => {
    const child: ChildProcess = fork(fileURLToPath(new URL('./gatehouse-child.ts', import.meta.url)), [], {
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('../fixtures/tls/backend.crt', import.meta.url)),
        GH_REDIS_URL: inject('redisUrl'),
        GH_YAML: mappingsYaml([{ frontendHost: '*', backend: `${origin}/base`, auth: 'none' }]),
      },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.once('message', (m: { url: string }) => resolve(m.url));
        child.once('exit', (code) => reject(new Error(`gatehouse child exited with ${code}`)));
      });
      const res = await send(url, { path: '/api/hello?x=1' });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('tls /base/hello?x=1');
      expect(hostSeen).toBe(new URL(origin).host);
      // New connections resume the TLS session instead of a full handshake each (a session cache, as undici keeps).
      const before = handshakes.length;
      for (let i = 0; i < 3; i++) expect((await send(url, { path: '/api/close' })).status).toBe(200);
      // The first of them rides the connection still open from the request above; the next two need new ones.
      expect(handshakes.length - before).toBe(2);
      expect(handshakes.slice(before)).toEqual([true, true]);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.connected) child.send('close');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
  });
});
