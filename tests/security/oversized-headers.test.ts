import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/** DOS-HEADERS (catalogue #128): oversized heads are refused by the server (431) before any routing or forwarding. */
describe('oversized request heads', () => {
  const proxy = useBareProxy();

  it.each([
    ['a 20 KB Cookie', () => `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nCookie: a=${'x'.repeat(20_000)}\r\n\r\n`],
    [
      '2,000 header lines',
      () => `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\n${Array.from({ length: 2000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
    ],
    ['a 64 KB URL', () => `GET /api/${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n`],
  ])('%s → 431, nothing forwarded', async (_name, raw) => {
    const before = proxy.backend.requests.length;
    const res = await sendRaw(proxy.url, raw());
    expect(res.status).toBe(431);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('a head just under the limit still works', async () => {
    const res = await send(proxy.url, { path: '/api/x', headers: ['Cookie', `a=${'x'.repeat(12_000)}`] });
    expect(res.status).toBe(200);
  });
});
