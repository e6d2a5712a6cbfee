import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

const SPOOF = [
  'X-Forwarded-For',
  '203.0.113.7',
  'X-Forwarded-For',
  '10.0.0.1',
  'X-Forwarded-Host',
  'admin.internal',
  'X-Forwarded-Proto',
  'https',
  'X-Forwarded-Port',
  '443',
  'Forwarded',
  'for=127.0.0.1;proto=https;host=admin.internal',
  'X-Real-IP',
  '127.0.0.1',
  'X-Forwarded-Server',
  'x',
];

/**
 * HDR-XFF (catalogue #91; RFC 9700 §4.13): X-Forwarded-* from a client that is not a trusted proxy are
 * replaced, not appended to. With TRUST_PROXY naming the peer they are kept and extended.
 */
describe('forwarding headers from clients', () => {
  let backend: TestBackend;
  let direct: TestGatehouse;
  let behindProxy: TestGatehouse;
  beforeAll(async () => {
    backend = await startBackend();
    const yaml = mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none' }]);
    direct = await startBareGatehouse(yaml);
    behindProxy = await startBareGatehouse(yaml, { TRUST_PROXY: '127.0.0.1' });
  });
  afterAll(async () => {
    await direct?.close();
    await behindProxy?.close();
    await backend?.close();
  });

  it('default (nothing trusted): overwritten with what Gatehouse saw', async () => {
    const res = await send(direct.url, { path: '/api/x', headers: SPOOF });
    expect(res.status).toBe(200);
    const rec = backend.last();
    expect(rec.headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(rec.headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(rec.headers.get('x-forwarded-host')).toEqual([new URL(direct.url).host]);
    for (const h of ['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-server']) expect(rec.headers.has(h), h).toBe(false);
  });

  it("TRUST_PROXY=127.0.0.1: the proxy's chain is kept and the peer appended", async () => {
    const res = await send(behindProxy.url, {
      path: '/api/x',
      headers: ['X-Forwarded-For', '203.0.113.7', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'app.example.com'],
    });
    expect(res.status).toBe(200);
    const rec = backend.last();
    expect(rec.headers.get('x-forwarded-for')).toEqual(['203.0.113.7, 127.0.0.1']);
    expect(rec.headers.get('x-forwarded-proto')).toEqual(['https']);
    expect(rec.headers.get('x-forwarded-host')).toEqual(['app.example.com']);
    expect(rec.headers.has('forwarded')).toBe(false);
  });
});
