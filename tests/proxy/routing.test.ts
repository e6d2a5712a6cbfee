import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse, startProxyStack, type ProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/** A backend that answers with its own name and the raw request-target it received. */
function named(name: string): Promise<TestBackend> {
  return startBackend((req, res, rec) => {
    req.on('end', () => res.end(JSON.stringify({ backend: name, url: rec.url })));
    return true;
  });
}

describe('/api routing by host, port and path prefix', () => {
  const b: Record<string, TestBackend> = {};
  let stack: ProxyStack;
  let bare: TestGatehouse;

  beforeAll(async () => {
    for (const name of ['exact', 'v2', 'v2admin', 'port', 'wild', 'wildB', 'any', 'ipv6', 'base', 'dflt', 'req'])
      b[name] = await named(name);
    stack = await startProxyStack({
      yaml: mappingsYaml([
        { frontendHost: '*', backend: b['any']?.url, auth: 'none' },
        { frontendHost: '*.example.com', backend: b['wild']?.url, auth: 'none' },
        { frontendHost: '*.b.example.com', backend: b['wildB']?.url, auth: 'none' },
        { frontendHost: 'App.Example.com', backend: b['exact']?.url, auth: 'none' },
        { frontendHost: 'app.example.com', pathPrefix: '/v2', backend: b['v2']?.url, auth: 'none' },
        { frontendHost: 'app.example.com', pathPrefix: '/v2/admin', backend: b['v2admin']?.url, auth: 'none' },
        { frontendHost: 'app.example.com', frontendPort: 8443, backend: b['port']?.url, auth: 'none' },
        { frontendHost: '[::1]', backend: b['ipv6']?.url, auth: 'none' },
        { frontendHost: 'base.example.org', backend: `${b['base']?.url}/base/`, auth: 'none' },
        { frontendHost: 'secure.example.org', backend: b['req']?.url },
      ]),
    });
    // No '*' mapping here, so defaultBackend and the 404 are reachable.
    bare = await startBareGatehouse(
      mappingsYaml([{ frontendHost: 'only.example.com', pathPrefix: '/orders', backend: b['exact']?.url, auth: 'none' }]),
    );
  });
  afterAll(async () => {
    await bare?.close();
    await stack?.close();
    await Promise.all(Object.values(b).map((x) => x.close()));
  });

  const via = async (gh: { url: string }, host: string, path: string) => {
    const res = await send(gh.url, { path, headers: ['Host', host] });
    return { status: res.status, body: res.json() };
  };

  it.each([
    ['app.example.com', '/api/x', 'exact'],
    ['APP.EXAMPLE.COM', '/api/x', 'exact'],
    ['app.example.com.', '/api/x', 'exact'],
    ['app.example.com:80', '/api/x', 'exact'],
    ['x.example.com', '/api/x', 'wild'],
    ['deep.x.example.com', '/api/x', 'wild'],
    ['x.b.example.com', '/api/x', 'wildB'],
    ['example.com', '/api/x', 'any'],
    ['other.test', '/api/x', 'any'],
    ['[::1]', '/api/x', 'ipv6'],
    ['[::1]:8080', '/api/x', 'ipv6'],
  ])('Host %s %s → %s', async (host, path, expected) => {
    const { status, body } = await via(stack.gh, host, path);
    expect(status).toBe(200);
    expect(body['backend']).toBe(expected);
  });

  it.each([
    ['/api/v2', 'v2'],
    ['/api/v2/', 'v2'],
    ['/api/v2/x', 'v2'],
    ['/api/V2/x', 'v2'],
    ['/api/v2?x=1', 'v2'],
    ['/api/v2x', 'exact'],
    ['/api/v2.json', 'exact'],
    ['/api/v2-internal/x', 'exact'],
    ['/api/v2/admin', 'v2admin'],
    ['/api/v2/admin/users', 'v2admin'],
    ['/api/v2/administrator', 'v2'],
    ['/api', 'exact'],
  ])('prefix on segment boundaries, longest wins: %s → %s', async (path, expected) => {
    const { status, body } = await via(stack.gh, 'app.example.com', path);
    expect(status).toBe(200);
    expect(body['backend']).toBe(expected);
  });

  it('a mapping naming the port beats host-only; host+prefix still beats it', async () => {
    expect((await via(stack.gh, 'app.example.com:8443', '/api/x')).body['backend']).toBe('port');
    expect((await via(stack.gh, 'app.example.com:8443', '/api/v2/x')).body['backend']).toBe('v2');
    expect((await via(stack.gh, 'app.example.com:9443', '/api/x')).body['backend']).toBe('exact');
  });

  it('strips only /api and forwards path, query and percent-encoding byte for byte', async () => {
    const cases: Array<[string, string]> = [
      ['/api/v1/users?x=1', '/v1/users?x=1'],
      ['/api/v1/a%20b/%C3%A9/c:d@e?q=a%2Fb&x=%7e+y&&z=%25', '/v1/a%20b/%C3%A9/c:d@e?q=a%2Fb&x=%7e+y&&z=%25'],
      ['/api/v1/users/', '/v1/users/'],
      ['/api', '/'],
      ['/api?x=1', '/?x=1'],
      ['/api/?x=1', '/?x=1'],
      ['/api/v1?a=/../b&c=%2e%2e', '/v1?a=/../b&c=%2e%2e'],
    ];
    for (const [sent, received] of cases) {
      const { status, body } = await via(stack.gh, 'app.example.com', sent);
      expect(status, sent).toBe(200);
      expect(body['url'], sent).toBe(received);
    }
  });

  it('prepends the backend URL path', async () => {
    expect((await via(stack.gh, 'base.example.org', '/api/v1/x?y=2')).body['url']).toBe('/base/v1/x?y=2');
    expect((await via(stack.gh, 'base.example.org', '/api')).body['url']).toBe('/base/');
  });

  it('auth defaults to required: 401 unauthorized without a session, backend untouched', async () => {
    const before = b['req']?.requests.length ?? 0;
    const res = await send(stack.url, { path: '/api/x', headers: ['Host', 'secure.example.org'] });
    expectError(res, 401, 'unauthorized');
    expect(b['req']?.requests.length).toBe(before);
    const ok = await send(stack.url, { path: '/api/x', headers: ['Host', 'secure.example.org', 'Cookie', stack.sessionCookie] });
    expect(ok.status).toBe(200);
    expect(ok.json()['backend']).toBe('req');
  });

  it('no mapping and no defaultBackend → 404 not_found, nothing forwarded', async () => {
    const before = b['exact']?.requests.length ?? 0;
    for (const [host, path] of [
      ['other.example.com', '/api/orders'],
      ['only.example.com', '/api/ordersadmin'],
      ['only.example.com', '/api/x'],
    ] as const) {
      const res = await send(bare.url, { path, headers: ['Host', host] });
      expectError(res, 404, 'not_found', `${host}${path}`);
    }
    expect(b['exact']?.requests.length).toBe(before);
    expect((await via(bare, 'only.example.com', '/api/orders/1')).body['backend']).toBe('exact');
  });
});

describe('defaultBackend', () => {
  let dflt: TestBackend;
  let mapped: TestBackend;
  let gh: TestGatehouse;
  beforeAll(async () => {
    dflt = await named('dflt');
    mapped = await named('mapped');
    gh = await startBareGatehouse(
      `defaultBackend: "${dflt.url}/d"\n${mappingsYaml([{ frontendHost: 'app.example.com', pathPrefix: '/v2', backend: mapped.url, auth: 'none' }])}`,
    );
  });
  afterAll(async () => {
    await gh?.close();
    await dflt?.close();
    await mapped?.close();
  });

  it('receives what no mapping matches, with auth required by default, identity headers and no token', async () => {
    const res = await send(gh.url, { path: '/api/v3/x', headers: ['Host', 'app.example.com'] });
    expectError(res, 401, 'unauthorized');
    expect(dflt.requests).toHaveLength(0);
    const mappedRes = await send(gh.url, { path: '/api/v2/x', headers: ['Host', 'app.example.com'] });
    expect(mappedRes.json()['backend']).toBe('mapped');
    const { secret: id } = await gh.app.sessions.create({
      claims: { sub: 'carol' },
      tokens: { accessToken: 'carol-token' },
      accessTokenExpiresAt: Date.now() + 3600_000,
    });
    const withSession = await send(gh.url, {
      path: '/api/v3/x?y=1',
      headers: ['Host', 'other.example.com', 'Cookie', `__Host-gh_session=${id}`],
    });
    expect(withSession.status).toBe(200);
    expect(withSession.json()).toEqual({ backend: 'dflt', url: '/d/v3/x?y=1' });
    expect(dflt.last().headers.get('x-user-sub')).toEqual(['carol']);
    // ROUTE-DEFAULT (catalogue #82): tokens go only to backends a mapping names.
    expect(dflt.last().headers.has('authorization')).toBe(false);
  });
});
