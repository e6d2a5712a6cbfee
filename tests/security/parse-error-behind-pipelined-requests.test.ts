import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { echo, exchangeUntilClose, send, startBackend, statusesIn } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * A malformed request pipelined behind requests Gatehouse is still answering: node:http's answer to the parse
 * error (and Gatehouse's, for a head over 16 KiB) used to be written at once, in front of the answers still owed,
 * and the connection closed. The client then read that 400 as the answer to its first request, which the backend
 * had carried out (a POST it might now repeat), and never got the real answers. RFC 9112 §9.3.2: responses go in
 * the order of the requests. Now the error answer waits for the owed ones.
 */
describe('a parse error behind pipelined requests', () => {
  const proxy = useBareProxy({
    backend: () =>
      startBackend((req, res, rec) => {
        if (!req.url?.startsWith('/slow')) return;
        req.resume();
        req.on('end', () => setTimeout(() => echo(res, rec), 150));
        return true;
      }),
  });

  const exchange = (bytes: string) => exchangeUntilClose(proxy.url, bytes);

  const statuses = statusesIn;
  const slow = (name: string, method = 'POST') =>
    `${method} /api/slow/${name} HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Length: 2\r\n\r\nok`;

  it('a malformed header line: the owed answers first, in order, then 400 and the connection closed', async () => {
    const before = proxy.backend.requests.length;
    const { received } = await exchange(
      slow('payment') + slow('receipt', 'PUT') + `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nBad Header\r\n\r\n`,
    );
    expect(statuses(received)).toEqual([200, 200, 400]);
    expect(received.indexOf('/slow/payment')).toBeLessThan(received.indexOf('/slow/receipt'));
    expect(received.indexOf('/slow/receipt')).toBeLessThan(received.lastIndexOf('HTTP/1.1 400'));
    expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['POST /slow/payment', 'PUT /slow/receipt']);
  });

  it('a head over 16 KiB: the owed answer first, then 431 headers_too_large', async () => {
    const { received } = await exchange(
      slow('payment') + `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(statuses(received)).toEqual([200, 431]);
    expect(received).toContain('"error":"headers_too_large"');
  });

  it('a bad chunk in the body of a request pipelined behind an owed one: the owed answer first, then 400', async () => {
    const { received } = await exchange(
      slow('payment') + `POST /api/next HTTP/1.1\r\nHost: ${proxy.host}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
    );
    expect(statuses(received)).toEqual([200, 400]);
    expect(received).toContain('/slow/payment');
  });

  it('a parse error inside the body of the request being read is answered at once (its backend exchange is not waited for)', async () => {
    const { received, ms } = await exchange(
      `POST /api/slow/upload HTTP/1.1\r\nHost: ${proxy.host}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
    );
    expect(statuses(received)).toEqual([400]);
    expect(ms).toBeLessThan(2_000);
  });
});

describe('a request timeout behind a pipelined request slower than it', () => {
  // node:http's request timeout counts the request being read (or the one that failed to parse), and reports it as a
  // client error while the answer owed before it is under way: that must not answer in its place.
  const proxy = useBareProxy({
    env: { REQUEST_TIMEOUT_SECONDS: '1' },
    backend: () =>
      startBackend((req, res, rec) => {
        req.resume();
        if (req.url?.startsWith('/events')) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const tick = setInterval(() => res.write('data: x\n\n'), 300);
          res.on('close', () => clearInterval(tick));
          return true;
        }
        req.on('end', () => setTimeout(() => echo(res, rec), 2_500));
        return true;
      }),
  });

  /** Writes `first`, then `rest` after `gapMs`, on one connection; everything received once it closes. */
  async function twoWrites(first: string, gapMs: number, rest: string): Promise<string> {
    const { hostname, port } = new URL(proxy.url);
    const socket = connect(Number(port), hostname);
    let received = '';
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(first, 'latin1');
    await new Promise((r) => setTimeout(r, gapMs));
    if (!socket.destroyed) socket.write(rest, 'latin1');
    await closed;
    return received;
  }

  it('a timed-out body finished afterwards never reaches its backend whole: cut at the timeout, 408 under its own id', async () => {
    const before = proxy.backend.requests.length;
    const received = await twoWrites(
      `POST /api/payment HTTP/1.1\r\nHost: ${proxy.host}\r\nX-Request-Id: pay-1\r\nContent-Length: 2\r\n\r\nok` +
        `POST /api/transfer HTTP/1.1\r\nHost: ${proxy.host}\r\nX-Request-Id: xfer-2\r\nContent-Length: 10\r\n\r\nok`,
      1_700,
      '12345678',
    );
    expect(statusesIn(received)).toEqual([200, 408]);
    expect(received.split(/(?=HTTP\/1\.1 408)/)[1]).toMatch(/\r\nx-request-id: xfer-2\r\n/i);
    const transfer = proxy.backend.requests.slice(before).find((r) => r.url === '/transfer');
    expect(transfer?.complete ?? false).toBe(false);
  }, 15_000);

  it('a body trickled behind an event stream is still cut at the request timeout', async () => {
    const before = proxy.backend.requests.length;
    const { hostname, port } = new URL(proxy.url);
    const socket = connect(Number(port), hostname);
    socket.on('error', () => {});
    socket.write(
      `GET /api/events HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n` +
        `POST /api/upload HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Length: 100000\r\n\r\nx`,
      'latin1',
    );
    try {
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 500));
        socket.write('x');
      }
      const upload = proxy.backend.requests.slice(before).find((r) => r.url === '/upload');
      expect(upload?.aborted).toBe(true);
    } finally {
      socket.destroy();
    }
  }, 15_000);

  it.each([
    ['a body that never ends', `POST /api/next HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10\r\n\r\nok`],
    ['a head that never ends', `GET /api/next HTTP/1.1\r\nHost: {host}\r\n`],
  ])(
    'a request timeout on %s behind an owed answer: that answer first, then 408 under its own id',
    async (_what, unfinished) => {
      const { received } = await exchangeUntilClose(
        proxy.url,
        `POST /api/payment HTTP/1.1\r\nHost: ${proxy.host}\r\nX-Request-Id: pay-1\r\nContent-Length: 2\r\n\r\nok` +
          unfinished.replace('{host}', proxy.host),
        8_000,
      );
      expect(statusesIn(received)).toEqual([200, 408]);
      const [answer, timeout] = received.split(/(?=HTTP\/1\.1 408)/);
      expect(answer).toMatch(/\r\nx-request-id: pay-1\r\n/i);
      expect(timeout).toContain('"error":"request_timeout"');
      expect(timeout).not.toMatch(/x-request-id: pay-1\r\n/i);
    },
    15_000,
  );

  it('the owed answer first, then 400: no 408 in its place', async () => {
    const { received } = await exchangeUntilClose(
      proxy.url,
      `POST /api/payment HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Length: 2\r\n\r\nok` +
        `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nBad Header\r\n\r\n`,
      8_000,
    );
    expect(statusesIn(received)).toEqual([200, 400]);
    expect(received).not.toContain('request_timeout');
  }, 15_000);
});

describe('a request cut behind an owed answer: what else it touches', () => {
  const failing = { now: false };
  const proxy = useBareProxy({
    env: { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' },
    backend: () =>
      startBackend((req, res, rec) => {
        req.resume();
        if (req.url?.includes('/slow')) req.on('end', () => setTimeout(() => echo(res, rec), 1_000));
        else if (failing.now) req.on('end', () => res.writeHead(500).end('boom'));
        else req.on('end', () => echo(res, rec));
        return true;
      }),
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/a', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/req', backend: url, auth: 'required' },
      {
        frontendHost: '*',
        pathPrefix: '/br',
        backend: url,
        auth: 'none',
        circuitBreaker: { failures: 2, windowSeconds: 30, cooldownSeconds: 1 },
      },
    ],
  });
  const slow = `POST /api/a/slow HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\nok`;
  const broken = (path: string, extra = '') =>
    `POST /api${path} HTTP/1.1\r\nHost: {host}\r\n${extra}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`;
  const on = (text: string) => text.replaceAll('{host}', proxy.host);

  it("a circuit's probe cut for the client's broken body does not close the circuit", async () => {
    failing.now = true;
    try {
      for (let i = 0; i < 2; i++) expect((await send(proxy.url, { path: '/api/br/x' })).status).toBe(500);
      expect((await send(proxy.url, { path: '/api/br/x' })).status).toBe(503);
      await new Promise((r) => setTimeout(r, 1_100));
      const { received } = await exchangeUntilClose(proxy.url, on(slow + broken('/br/x')));
      expect(statusesIn(received)).toEqual([200, 400]);
      expect(proxy.gh.app.backends.snapshot().breakers[0]?.state).not.toBe('closed');
    } finally {
      failing.now = false;
    }
  });

  it('an admission still waiting on the store when the request is cut adds no second answer, line or count', async () => {
    const cookie = `Cookie: ${proxy.gh.config.session.cookieName}=${'A'.repeat(43)}\r\nX-Request-Id: cut-2\r\n`;
    const { received } = await exchangeUntilClose(proxy.url, on(slow + broken('/req/x', cookie)));
    expect(statusesIn(received)).toEqual([200, 400]);
    await new Promise((r) => setTimeout(r, 200));
    expect(proxy.gh.logs.filter((l) => l['reqId'] === 'cut-2' && 'status' in l).map((l) => l['status'])).toEqual([400]);
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.gh.app.metricsAddress()?.port}/metrics`)).text();
    expect(metrics).not.toMatch(/gatehouse_error_responses_total\{[^}]*error="unauthorized"[^}]*\} [1-9]/);
  });

  it('a chunk extension over its limit is 413 payload_too_large behind an owed answer, as alone', async () => {
    const big = `POST /api/a/other HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n1;a=${'b'.repeat(20_000)}\r\nx\r\n`;
    const { received } = await exchangeUntilClose(proxy.url, on(slow + big));
    expect(statusesIn(received)).toEqual([200, 413]);
    expect(received).toContain('"error":"payload_too_large"');
  });
});
