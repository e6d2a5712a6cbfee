import { describe, expect, it } from 'vitest';
import { apiCall, corsHeaders, expectCorsFor, expectNoCors, varyOf } from '../helpers/edge.ts';
import { expectError, expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { closedPort, useBareProxy, useProxyStack } from '../helpers/proxy-stack.ts';

const SPA = 'https://spa.example.com';
const PARTNER = 'https://partner.example.com';

/**
 * CORS on /api through the real proxy to a recording backend: preflights answered at the edge (never forwarded,
 * before auth), Gatehouse's headers on every answer an allowed origin gets (errors too, or the page cannot read
 * them), `Vary: Origin`, and a mapping's own `cors` replacing the global list.
 */
describe('CORS on /api', () => {
  const stack = useProxyStack({
    config: `allowedOrigins: ["${SPA}"]\n`,
    backends: { down: closedPort },
    routes: (url, { down }) => [
      {
        frontendHost: '*',
        pathPrefix: '/partner',
        backend: url,
        cors: { origins: [PARTNER], allowedHeaders: ['Content-Type', 'X-Partner'], exposedHeaders: ['X-Total'], maxAgeSeconds: 60 },
      },
      { frontendHost: '*', pathPrefix: '/private', backend: url, cors: { origins: [] } },
      { frontendHost: '*', pathPrefix: '/down', backend: down.url },
      { frontendHost: '*', backend: url },
    ],
  });
  const reached = () => stack.backend.requests.length;
  const preflight = (origin: string, path = '/api/orders', method = 'POST') =>
    apiCall(stack.url, {
      method: 'OPTIONS',
      path,
      headers: ['Origin', origin, 'Access-Control-Request-Method', method, 'Access-Control-Request-Headers', 'content-type'],
    });

  it('a preflight from an allowed origin: 204 with the compiled headers, before auth, never forwarded', async () => {
    const before = reached();
    const res = await preflight(SPA);
    expect(res.status).toBe(204);
    expect(res.body.length).toBe(0);
    expect(corsHeaders(res)).toEqual({
      'access-control-allow-origin': SPA,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET,HEAD,POST,PUT,PATCH,DELETE',
      'access-control-allow-headers': 'Content-Type,Authorization,X-Requested-With,X-Request-Id',
      'access-control-max-age': '600',
      'access-control-expose-headers': 'X-Request-Id',
    });
    expect(varyOf(res)).toContain('origin');
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(reached()).toBe(before);
  });

  it('a refused preflight: 403 origin_not_allowed, no CORS header, never forwarded', async () => {
    let res: Awaited<ReturnType<typeof preflight>> | undefined;
    await expectErrorUnforwarded(reached, async () => (res = await preflight('https://evil.example')), 403, 'origin_not_allowed');
    if (res) expectNoCors(res);
  });

  it('an OPTIONS that is no preflight (no Access-Control-Request-Method) is an ordinary request, forwarded', async () => {
    const res = await apiCall(stack.url, { method: 'OPTIONS', cookie: stack.sessionCookie, headers: ['Origin', SPA] });
    expect(res.status).toBe(200);
    expect(stack.backend.last().method).toBe('OPTIONS');
    expectCorsFor(res, SPA);
  });

  it('a 2xx for an allowed origin carries the CORS headers; without Origin only Vary: Origin', async () => {
    const res = await apiCall(stack.url, { method: 'GET', cookie: stack.sessionCookie, headers: ['Origin', SPA] });
    expect(res.status).toBe(200);
    expectCorsFor(res, SPA);
    expect(res.headers['access-control-expose-headers']).toBe('X-Request-Id');
    const plain = await apiCall(stack.url, { method: 'GET', cookie: stack.sessionCookie });
    expect(plain.status).toBe(200);
    expectNoCors(plain);
    expect(varyOf(plain)).toContain('origin');
  });

  it('XHR-401 (catalogue #67): no session from an allowed origin → 401 JSON the page can read, no redirect', async () => {
    const res = await apiCall(stack.url, { method: 'GET', headers: ['Origin', SPA, 'X-Requested-With', 'XMLHttpRequest'] });
    expectError(res, 401, 'unauthorized');
    expectCorsFor(res, SPA);
    expect(res.headers['location']).toBeUndefined();
  });

  it('a CSRF refusal for an allowed origin carries the CORS headers', async () => {
    const res = await apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Origin', SPA, 'Sec-Fetch-Site', 'cross-site'] });
    expectError(res, 403, 'csrf');
    expectCorsFor(res, SPA);
  });

  it('a 502 from a backend that cannot be reached carries the CORS headers', async () => {
    const res = await apiCall(stack.url, { method: 'GET', path: '/api/down/x', cookie: stack.sessionCookie, headers: ['Origin', SPA] });
    expectError(res, 502, 'bad_gateway');
    expectCorsFor(res, SPA);
  });

  it("a mapping's cors replaces the global list, headers and max age", async () => {
    const pre = await preflight(PARTNER, '/api/partner/x', 'PUT');
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre)).toMatchObject({
      'access-control-allow-origin': PARTNER,
      'access-control-allow-headers': 'Content-Type,X-Partner',
      'access-control-max-age': '60',
      'access-control-expose-headers': 'X-Total',
    });
    const actual = await apiCall(stack.url, {
      method: 'GET',
      path: '/api/partner/x',
      cookie: stack.sessionCookie,
      headers: ['Origin', PARTNER],
    });
    expectCorsFor(actual, PARTNER);
    expect(actual.headers['access-control-expose-headers']).toBe('X-Total');
    // The partner's origin counts for CSRF on its mapping only; the global SPA origin not at all there.
    expect((await apiCall(stack.url, { path: '/api/partner/x', cookie: stack.sessionCookie, headers: ['Origin', PARTNER] })).status).toBe(
      200,
    );
    expectError(await apiCall(stack.url, { path: '/api/partner/x', cookie: stack.sessionCookie, headers: ['Origin', SPA] }), 403, 'csrf');
    expectError(await apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Origin', PARTNER] }), 403, 'csrf');
    expectError(await preflight(SPA, '/api/partner/x'), 403, 'origin_not_allowed');
    expectError(await preflight(PARTNER), 403, 'origin_not_allowed');
  });

  it('a mapping with no origins sends no CORS header and no Vary, and refuses every preflight', async () => {
    const res = await apiCall(stack.url, { method: 'GET', path: '/api/private/x', cookie: stack.sessionCookie, headers: ['Origin', SPA] });
    expect(res.status).toBe(200);
    expectNoCors(res);
    expect(varyOf(res)).not.toContain('origin');
    expectError(await preflight(SPA, '/api/private/x'), 403, 'origin_not_allowed');
  });
});

describe('CORS on a 404 no mapping answers', () => {
  const proxy = useBareProxy({
    config: `allowedOrigins: ["${SPA}"]\n`,
    routes: (url) => [{ frontendHost: '*', pathPrefix: '/only', backend: url, auth: 'none' }],
  });

  it('an allowed origin can read the 404 (allowedOrigins); another origin gets no CORS header', async () => {
    const res = await apiCall(proxy.url, { method: 'GET', path: '/api/elsewhere', headers: ['Origin', SPA] });
    expectError(res, 404, 'not_found');
    expectCorsFor(res, SPA);
    const foreign = await apiCall(proxy.url, { method: 'GET', path: '/api/elsewhere', headers: ['Origin', 'https://evil.example'] });
    expectError(foreign, 404, 'not_found');
    expectNoCors(foreign);
  });
});

describe('CORS with a required CSRF header', () => {
  const stack = useProxyStack({
    config: `allowedOrigins: ["${SPA}"]\ncsrf: { requireHeader: { name: X-CSRF } }\n`,
    routes: (url) => [{ frontendHost: '*', backend: url, cors: { allowedHeaders: ['Content-Type'] } }],
  });

  it("a mapping's own allowedHeaders still allow the CSRF header, or an allowed origin could never send it", async () => {
    const res = await apiCall(stack.url, {
      method: 'OPTIONS',
      path: '/api/orders',
      headers: ['Origin', SPA, 'Access-Control-Request-Method', 'POST', 'Access-Control-Request-Headers', 'content-type,x-csrf'],
    });
    expect(res.status).toBe(204);
    expect(corsHeaders(res)['access-control-allow-headers']).toBe('Content-Type,X-CSRF');
  });
});
