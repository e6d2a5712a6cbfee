import { request as httpRequest, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { header, send, startBackend, startSseBackend, type TestBackend } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/** Answers /head, /204, /304 and /chunked in the shapes a proxy must relay as they are. */
function startShapesBackend(): Promise<TestBackend> {
  return startBackend((req, res) => {
    const url = req.url ?? '';
    req.resume();
    if (url === '/head') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1234, etag: '"v1"' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
    } else if (url === '/204') {
      res.writeHead(204, { 'x-done': 'yes' }).end();
    } else if (url === '/304') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
    } else if (url === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      setTimeout(() => {
        res.write('two,');
        res.end('three');
      }, 20);
    } else {
      return;
    }
    return true;
  });
}

describe('streaming through /api', () => {
  const stack = useProxyStack({
    backends: { sse: () => startSseBackend({ count: 3, gapMs: 400 }), shapes: startShapesBackend },
    routes: (echo, { sse, shapes }) => [
      { frontendHost: '*', backend: echo },
      { frontendHost: '*', pathPrefix: '/events', backend: sse.url },
      { frontendHost: '*', pathPrefix: '/head', backend: shapes.url },
      { frontendHost: '*', pathPrefix: '/204', backend: shapes.url },
      { frontendHost: '*', pathPrefix: '/304', backend: shapes.url },
      { frontendHost: '*', pathPrefix: '/chunked', backend: shapes.url },
    ],
  });

  const open = (path: string, init: { method?: string; headers?: Record<string, string> } = {}, base = stack.url) => {
    const u = new URL(base);
    return httpRequest({
      host: u.hostname,
      port: u.port,
      path,
      method: init.method ?? 'GET',
      // A same-origin page's call: its Origin passes the CSRF check on uploads.
      headers: { cookie: stack.sessionCookie, origin: stack.url, ...init.headers },
      agent: false,
    });
  };
  const responseOf = (req: ReturnType<typeof open>) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });

  it('delivers each SSE event as the backend writes it, before the backend finishes', async () => {
    const started = Date.now();
    const req = open('/api/events', { headers: { accept: 'text/event-stream' } });
    req.end();
    const res = await responseOf(req);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: Array<{ at: number; text: string }> = [];
    await new Promise<void>((resolve) => {
      res.on('data', (c: Buffer) => arrivals.push({ at: Date.now() - started, text: c.toString() }));
      res.on('end', resolve);
    });
    const text = arrivals.map((a) => a.text).join('');
    expect(text).toBe([0, 1, 2].map((n) => `id: ${n}\nevent: tick\ndata: {"n":${n}}\n\n`).join(''));
    // The backend needs 800 ms for all three; the first event must not wait for that.
    expect(arrivals[0]?.text).toContain('data: {"n":0}');
    expect(arrivals[0]?.text).not.toContain('"n":1');
    expect(arrivals[0]?.at).toBeLessThan(500);
    expect(arrivals.at(-1)?.at).toBeGreaterThanOrEqual(750);
  });

  it('streams a chunked request body, and a chunked response, as a direct call would', async () => {
    const req = open('/api/chunked-upload', { method: 'PUT' });
    req.write('a'.repeat(1000));
    await new Promise((r) => setTimeout(r, 20));
    req.end('b'.repeat(24));
    const res = await responseOf(req);
    res.resume();
    await new Promise((r) => res.on('end', r));
    expect(res.statusCode).toBe(200);
    const rec = stack.backend.last();
    expect(rec.bodySize).toBe(1024);
    expect(rec.complete).toBe(true);
    // Chunked on the wire, unless the whole body had already arrived when Gatehouse sent it (then undici counts it).
    expect(header(rec, 'transfer-encoding') === 'chunked' || header(rec, 'content-length') === '1024', JSON.stringify(rec.rawHeaders)).toBe(
      true,
    );

    const out = await send(stack.url, { path: '/api/chunked', headers: ['Cookie', stack.sessionCookie] });
    expect(out.status).toBe(200);
    expect(out.body.toString()).toBe('one,two,three');
    expect(out.headers['transfer-encoding']).toBe('chunked');
  });

  it('answers Expect: 100-continue and forwards the body that follows', async () => {
    const req = open('/api/expect', { method: 'POST', headers: { expect: '100-continue', 'content-length': '5' } });
    const continued = new Promise<void>((resolve) => req.on('continue', resolve));
    req.flushHeaders();
    await continued;
    req.end('hello');
    const res = await responseOf(req);
    res.resume();
    expect(res.statusCode).toBe(200);
    const rec = stack.backend.last();
    expect(rec.url).toBe('/expect');
    expect(rec.bodySize).toBe(5);
  });

  it('HEAD, 204 and 304 behave as they do directly', async () => {
    for (const [method, path, extra] of [
      ['HEAD', '/head', []],
      ['GET', '/204', []],
      ['GET', '/304', ['If-None-Match', '"v1"']],
    ] as const) {
      const direct = await send(stack.backends.shapes.url, { method, path, headers: [...extra] });
      const proxied = await send(stack.url, { method, path: `/api${path}`, headers: ['Cookie', stack.sessionCookie, ...extra] });
      expect(proxied.status, path).toBe(direct.status);
      expect(proxied.body.length, path).toBe(0);
      for (const h of ['content-length', 'etag', 'x-done', 'cache-control', 'transfer-encoding']) {
        expect(proxied.headers[h], `${path} ${h}`).toBe(direct.headers[h]);
      }
    }
    const headRec = stack.backends.shapes.requests.find((r) => r.url === '/head' && r.method === 'HEAD');
    expect(headRec).toBeDefined();
  });
});
