import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, sendRaw, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

/** DOS-HEADERS (catalogue #128): oversized heads are refused by the server (431) before any routing or forwarding. */
describe('oversized request heads', () => {
  let backend: TestBackend;
  let gh: TestGatehouse;
  let host: string;
  beforeAll(async () => {
    backend = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none' }]));
    host = new URL(gh.url).host;
  });
  afterAll(async () => {
    await gh?.close();
    await backend?.close();
  });

  it.each([
    ['a 20 KB Cookie', () => `GET /api/x HTTP/1.1\r\nHost: ${host}\r\nCookie: a=${'x'.repeat(20_000)}\r\n\r\n`],
    ['2,000 header lines', () => `GET /api/x HTTP/1.1\r\nHost: ${host}\r\n${Array.from({ length: 2000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
    ['a 64 KB URL', () => `GET /api/${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: ${host}\r\n\r\n`],
  ])('%s → 431, nothing forwarded', async (_name, raw) => {
    const before = backend.requests.length;
    const res = await sendRaw(gh.url, raw());
    expect(res.status).toBe(431);
    expect(backend.requests.length).toBe(before);
  });

  it('a head just under the limit still works', async () => {
    const res = await send(gh.url, { path: '/api/x', headers: ['Cookie', `a=${'x'.repeat(12_000)}`] });
    expect(res.status).toBe(200);
  });
});
