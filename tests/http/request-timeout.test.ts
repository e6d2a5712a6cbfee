import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * REQUEST_TIMEOUT_SECONDS bounds how long a client may take to send its request (slowloris, security-cases DOS).
 * A short one used to stop start-up with Node's RangeError (the 20 s head timeout exceeded it); it now starts,
 * and a stalled client gets Gatehouse's JSON 408 `request_timeout` in about that time, counted in the metrics.
 */
describe('REQUEST_TIMEOUT_SECONDS=1', () => {
  const proxy = useBareProxy({
    env: { REQUEST_TIMEOUT_SECONDS: '1', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1' },
    config: 'schemas:\n  - method: POST\n    path: /items\n    body: { type: object }\n',
  });

  it('starts, and a request sent in time is answered', async () => {
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(200);
    const body = '{"a":1}';
    const res = await send(proxy.url, { method: 'POST', path: '/api/items', headers: ['Content-Type', 'application/json'], body });
    expect(res.status).toBe(200);
  });

  it.each([
    [
      'a body that stops short of its Content-Length',
      () => `POST /api/items HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"a"`,
    ],
    ['a head that never ends', () => `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nX-Slow: 1\r\n`],
  ])('%s → 408 request_timeout as JSON within a few seconds, nothing forwarded', async (_name, raw) => {
    const before = proxy.backend.requests.length;
    const started = performance.now();
    const res = await sendRaw(proxy.url, raw(), 5000);
    expectError(res, 408, 'request_timeout');
    expect(res.head).toMatch(/^content-type: application\/json; charset=utf-8\r?$/im);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('a client that keeps sending, slowly, is cut off too', async () => {
    const { hostname, port } = new URL(proxy.url);
    const socket = connect(Number(port), hostname);
    socket.write(`POST /api/items HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`);
    const drip = setInterval(() => socket.writable && socket.write(' '), 100);
    const answer = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.on('close', () => resolve(data));
      socket.on('error', () => undefined);
    });
    clearInterval(drip);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"error":"request_timeout"');
  });

  it.each([
    ['a body a schema checks (read whole)', '/api/items'],
    ['a body streamed to the backend', '/api/upload'],
  ])('%s cut off by the timeout: one access line, 408 request_timeout, under the X-Request-Id the client got', async (_name, path) => {
    const res = await sendRaw(
      proxy.url,
      `POST ${path} HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"a"`,
      5000,
    );
    expectError(res, 408, 'request_timeout');
    expect(res.head).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    const id = /^x-request-id: (.+?)\r?$/im.exec(res.head)?.[1];
    await expect.poll(() => proxy.gh.logs.filter((l) => l['reqId'] === id).length).toBeGreaterThan(0);
    const lines = proxy.gh.logs.filter((l) => l['reqId'] === id);
    expect(lines.map((l) => [l['msg'], l['path'], l['status'], l['detail']])).toEqual([['proxy', path, 408, 'request_timeout']]);
    expect(proxy.gh.logs.filter((l) => l['path'] === path && l['status'] === 499)).toEqual([]);
  });

  it('each is counted as gatehouse_error_responses_total{error="request_timeout"}', async () => {
    const at = proxy.gh.app.metricsAddress();
    const text = await (await fetch(`http://127.0.0.1:${at?.port}/metrics`)).text();
    expect(text).toMatch(/^gatehouse_error_responses_total\{error="request_timeout"\} 5$/m);
  });
});
