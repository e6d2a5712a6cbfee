import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, sendRaw, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

/**
 * HOST-VARIANTS (catalogue #81; RFC 9112 §3.2): case, a trailing dot and the scheme's default port route
 * like the plain name; a malformed or missing Host is 400 invalid_host, never a guess.
 */
describe('Host header variants', () => {
  let app: TestBackend;
  let other: TestBackend;
  let gh: TestGatehouse;
  beforeAll(async () => {
    app = await startBackend();
    other = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([
      { frontendHost: 'app.example.com', backend: app.url, auth: 'none' },
      { frontendHost: '*', backend: other.url, auth: 'none' },
    ]));
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([app?.close(), other?.close()]);
  });

  it.each(['app.example.com', 'APP.EXAMPLE.COM', 'App.Example.Com', 'app.example.com.', 'APP.example.com.', 'app.example.com:80', 'app.example.com.:80'])(
    'Host: %s routes to the app.example.com mapping',
    async (host) => {
      const before = app.requests.length;
      const res = await send(gh.url, { path: '/api/x', headers: ['Host', host] });
      expect(res.status).toBe(200);
      expect(app.requests.length).toBe(before + 1);
    },
  );

  it.each(['evil@app.example.com', 'app.example.com:abc', 'app.example.com:0', 'app.example.com:99999', 'app.example.com/x', 'app example.com', '[::1', 'app.example.com:80:80', ''])(
    'Host: %j → 400 invalid_host, no backend called',
    async (host) => {
      const before = app.requests.length + other.requests.length;
      expectError(await send(gh.url, { path: '/api/x', headers: ['Host', host] }), 400, 'invalid_host', host);
      expect(app.requests.length + other.requests.length).toBe(before);
    },
  );

  it('a missing Host on HTTP/1.1 is refused with 400 before anything is forwarded', async () => {
    const before = app.requests.length + other.requests.length;
    const res = await sendRaw(gh.url, 'GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(app.requests.length + other.requests.length).toBe(before);
  });

  it('a missing Host on HTTP/1.0 → 400 invalid_host', async () => {
    const before = app.requests.length + other.requests.length;
    const res = await sendRaw(gh.url, 'GET /api/x HTTP/1.0\r\n\r\n');
    expectError(res, 400, 'invalid_host');
    expect(app.requests.length + other.requests.length).toBe(before);
  });

  it('X-Forwarded-Host from an untrusted client does not pick the route', async () => {
    const before = app.requests.length;
    const res = await send(gh.url, { path: '/api/x', headers: ['Host', 'other.example.com', 'X-Forwarded-Host', 'app.example.com'] });
    expect(res.status).toBe(200);
    expect(app.requests.length).toBe(before);
    expect(other.last().headers.get('x-forwarded-host')).toEqual(['other.example.com']);
  });
});
