import { describe, expect, it } from 'vitest';
import { apiCall } from '../helpers/edge.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const EVIL = ['Origin', 'https://evil.example'];

/**
 * METHOD-OVERRIDE (catalogue #65; OWASP WSTG "Testing for HTTP Method Overriding"): a GET must never become a
 * DELETE past the CSRF check. Override headers are stripped before forwarding (method-override-stripped.test.ts);
 * a `_method` query parameter, which Rails, Laravel and method-override read, makes the request checked as an
 * unsafe one whatever its method.
 */
describe('CSRF: method overrides', () => {
  const stack = useProxyStack();
  const reached = () => stack.backend.requests.length;

  it('a foreign POST with X-HTTP-Method-Override: DELETE → 403 csrf', async () => {
    await expectErrorUnforwarded(
      reached,
      () =>
        apiCall(stack.url, { path: '/api/items/1', cookie: stack.sessionCookie, headers: [...EVIL, 'X-HTTP-Method-Override', 'DELETE'] }),
      403,
      'csrf',
    );
  });

  it.each(['GET', 'OPTIONS'])('a foreign %s with ?_method=DELETE and the cookie → 403 csrf', async (method) => {
    // A backend's query parser decodes the name (`%5Fmethod` is `_method`) and reads `_method[]` as a list.
    for (const path of [
      '/api/items/1?_method=DELETE',
      '/api/items/1?x=1&_METHOD=delete',
      '/api/items/1?%5Fmethod=DELETE',
      '/api/items/1?_method[]=DELETE',
    ])
      await expectErrorUnforwarded(
        reached,
        () => apiCall(stack.url, { method, path, cookie: stack.sessionCookie, headers: EVIL }),
        403,
        'csrf',
        path,
      );
  });

  it('a GET with an override header from a foreign origin is forwarded as a GET, the header stripped', async () => {
    const res = await apiCall(stack.url, {
      method: 'GET',
      path: '/api/items/1',
      cookie: stack.sessionCookie,
      headers: [...EVIL, 'X-HTTP-Method-Override', 'DELETE'],
    });
    expect(res.status).toBe(200);
    const rec = stack.backend.last();
    expect(rec.method).toBe('GET');
    expect(rec.headers.has('x-http-method-override')).toBe(false);
  });

  it("?_method=DELETE from Gatehouse's own origin is forwarded", async () => {
    const res = await apiCall(stack.url, {
      method: 'GET',
      path: '/api/items/1?_method=DELETE',
      cookie: stack.sessionCookie,
      headers: ['Origin', stack.url],
    });
    expect(res.status).toBe(200);
  });
});
