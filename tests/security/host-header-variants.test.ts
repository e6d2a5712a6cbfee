import { describe, expect, it } from 'vitest';
import { send, sendRaw, startBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * HOST-VARIANTS (catalogue #81; RFC 9112 §3.2): case, a trailing dot and the scheme's default port route
 * like the plain name; a malformed or missing Host is 400 invalid_host, never a guess.
 */
describe('Host header variants', () => {
  const proxy = useBareProxy({
    backends: { other: startBackend },
    routes: (app, { other }) => [
      { frontendHost: 'app.example.com', backend: app, auth: 'none' },
      { frontendHost: '*', backend: other.url, auth: 'none' },
    ],
  });

  it.each([
    'app.example.com',
    'APP.EXAMPLE.COM',
    'App.Example.Com',
    'app.example.com.',
    'APP.example.com.',
    'app.example.com:80',
    'app.example.com.:80',
  ])('Host: %s routes to the app.example.com mapping', async (host) => {
    const before = proxy.backend.requests.length;
    const res = await send(proxy.url, { path: '/api/x', headers: ['Host', host] });
    expect(res.status).toBe(200);
    expect(proxy.backend.requests.length).toBe(before + 1);
  });

  it.each([
    'evil@app.example.com',
    'app.example.com:abc',
    'app.example.com:0',
    'app.example.com:99999',
    'app.example.com/x',
    'app example.com',
    '[::1',
    'app.example.com:80:80',
    '',
  ])('Host: %j → 400 invalid_host, no backend called', async (host) => {
    const before = proxy.backend.requests.length + proxy.backends.other.requests.length;
    expectError(await send(proxy.url, { path: '/api/x', headers: ['Host', host] }), 400, 'invalid_host', host);
    expect(proxy.backend.requests.length + proxy.backends.other.requests.length).toBe(before);
  });

  it('a missing Host on HTTP/1.1 is refused with 400 before anything is forwarded', async () => {
    const before = proxy.backend.requests.length + proxy.backends.other.requests.length;
    const res = await sendRaw(proxy.url, 'GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(proxy.backend.requests.length + proxy.backends.other.requests.length).toBe(before);
  });

  it('a missing Host on HTTP/1.0 → 400 invalid_host', async () => {
    const before = proxy.backend.requests.length + proxy.backends.other.requests.length;
    const res = await sendRaw(proxy.url, 'GET /api/x HTTP/1.0\r\n\r\n');
    expectError(res, 400, 'invalid_host');
    expect(proxy.backend.requests.length + proxy.backends.other.requests.length).toBe(before);
  });

  it('X-Forwarded-Host from an untrusted client does not pick the route', async () => {
    const before = proxy.backend.requests.length;
    const res = await send(proxy.url, { path: '/api/x', headers: ['Host', 'other.example.com', 'X-Forwarded-Host', 'app.example.com'] });
    expect(res.status).toBe(200);
    expect(proxy.backend.requests.length).toBe(before);
    expect(proxy.backends.other.last().headers.get('x-forwarded-host')).toEqual(['other.example.com']);
  });
});
