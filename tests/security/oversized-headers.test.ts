import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * DOS-HEADERS (catalogue #128): oversized heads are refused before any routing or forwarding, with Gatehouse's
 * JSON error (not Node's bare answer): 431 headers_too_large, or 414 uri_too_long when the URL is what is too long.
 */
describe('oversized request heads', () => {
  const proxy = useBareProxy();

  it.each([
    [
      'a 20 KB Cookie',
      431,
      'headers_too_large',
      () => `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nCookie: a=${'x'.repeat(20_000)}\r\n\r\n`,
    ],
    [
      '2,000 header lines',
      431,
      'headers_too_large',
      () => `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\n${Array.from({ length: 2000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
    ],
    ['a 64 KB URL', 414, 'uri_too_long', () => `GET /api/${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n`],
    ['a 64 KB URL outside /api', 414, 'uri_too_long', () => `GET /${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n`],
    [
      'a 10 KB URL (under the head limit, over the URL limit)',
      414,
      'uri_too_long',
      () => `GET /api/${'a'.repeat(10_000)} HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n`,
    ],
    ['a 10 KB URL outside /api', 414, 'uri_too_long', () => `GET /${'a'.repeat(10_000)} HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n`],
  ])('%s → %i %s as JSON, nothing forwarded', async (_name, status, code, raw) => {
    const before = proxy.backend.requests.length;
    const res = await sendRaw(proxy.url, raw());
    expectError(res, status, code);
    expect(res.head).toMatch(/^content-type: application\/json; charset=utf-8\r?$/im);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('a head just under the limit still works', async () => {
    const res = await send(proxy.url, { path: '/api/x', headers: ['Cookie', `a=${'x'.repeat(12_000)}`] });
    expect(res.status).toBe(200);
  });

  it('a URL of exactly 8 KiB still works', async () => {
    const path = `/api/${'a'.repeat(8192 - 5)}`;
    expect(path.length).toBe(8192);
    const res = await send(proxy.url, { path });
    expect(res.status).toBe(200);
  });
});
