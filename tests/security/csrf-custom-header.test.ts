import { describe, expect, it } from 'vitest';
import { apiCall, corsHeaders } from '../helpers/edge.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const ALLOWED = 'https://spa.example.com';

/**
 * CSRF-HDR and CSRF-SIMPLE (catalogue #59, #60; draft-ietf-oauth-browser-based-apps §6.1.3.3.2, Duende BFF
 * `X-CSRF: 1`): with `csrf.requireHeader`, every cookie-carrying unsafe request must carry the header, which a
 * page on another origin cannot add without a CORS preflight that only allowed origins pass. A form post
 * (text/plain, urlencoded, multipart) can never carry it. Per mapping `requireHeader` overrides (false: none).
 */
describe('CSRF: the required custom header', () => {
  const stack = useProxyStack({
    config: `allowedOrigins: ["${ALLOWED}"]\ncsrf:\n  requireHeader: { name: X-CSRF, value: "1" }\n`,
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/open', backend: url, csrf: { requireHeader: false } },
      { frontendHost: '*', pathPrefix: '/own', backend: url, csrf: { requireHeader: { name: 'X-Requested-By', value: 'spa' } } },
      { frontendHost: '*', backend: url },
    ],
  });
  const reached = () => stack.backend.requests.length;
  const own = () => ['Origin', stack.url];

  it('a same-origin POST with the cookie and JSON but without X-CSRF → 403 csrf, nothing forwarded', async () => {
    await expectErrorUnforwarded(reached, () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: own() }), 403, 'csrf');
  });

  it.each(['0', 'true', ''])('X-CSRF: %j (not the configured value) → 403 csrf', async (value) => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: [...own(), 'X-CSRF', value] }),
      403,
      'csrf',
    );
  });

  it.each([
    ['text/plain', '{"a":1}'],
    ['application/x-www-form-urlencoded', 'a=1'],
    ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'],
  ])('a cross-site form post (%s) → 403 csrf', async (contentType, body) => {
    await expectErrorUnforwarded(
      reached,
      () =>
        apiCall(stack.url, {
          cookie: stack.sessionCookie,
          contentType,
          body,
          headers: ['Origin', 'https://evil.example', 'Sec-Fetch-Site', 'cross-site'],
        }),
      403,
      'csrf',
    );
  });

  it('with X-CSRF: 1 (any name case) from an allowed origin it is forwarded, the header with it', async () => {
    const res = await apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Origin', ALLOWED, 'x-csrf', '1'] });
    expect(res.status).toBe(200);
    expect(stack.backend.last().headers.get('x-csrf')).toEqual(['1']);
  });

  it('a preflight from the allowed origin lists X-CSRF among the allowed headers', async () => {
    const res = await apiCall(stack.url, {
      method: 'OPTIONS',
      headers: ['Origin', ALLOWED, 'Access-Control-Request-Method', 'POST', 'Access-Control-Request-Headers', 'content-type,x-csrf'],
    });
    expect(res.status).toBe(204);
    expect(corsHeaders(res)['access-control-allow-headers']?.toLowerCase().split(',')).toContain('x-csrf');
  });

  it('requireHeader: false on a mapping: forwarded without it (the Origin check still holds)', async () => {
    const res = await apiCall(stack.url, { path: '/api/open/x', cookie: stack.sessionCookie, headers: own() });
    expect(res.status).toBe(200);
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { path: '/api/open/x', cookie: stack.sessionCookie, headers: ['Origin', 'https://evil.example'] }),
      403,
      'csrf',
    );
  });

  it("a mapping's own header replaces the top-level one", async () => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { path: '/api/own/x', cookie: stack.sessionCookie, headers: [...own(), 'X-CSRF', '1'] }),
      403,
      'csrf',
    );
    const res = await apiCall(stack.url, { path: '/api/own/x', cookie: stack.sessionCookie, headers: [...own(), 'X-Requested-By', 'spa'] });
    expect(res.status).toBe(200);
  });
});
