import { beforeAll, describe, expect, it } from 'vitest';
import { header, send, startBackend, type TestBackend } from '../helpers/backends.ts';
import { SESSION_COOKIE, useProxyStack } from '../helpers/proxy-stack.ts';

/** The echo backend, except that answers under /resp carry headers a proxy must filter or keep. */
function startHeadersBackend(): Promise<TestBackend> {
  return startBackend((req, res) => {
    if (!req.url?.startsWith('/resp')) return;
    req.resume();
    req.on('end', () => {
      res.setHeader('set-cookie', ['app=1; Path=/; HttpOnly', 'theme=dark; Path=/']);
      res.setHeader('connection', 'keep-alive, x-backend-secret');
      res.setHeader('x-backend-secret', 'hop-by-hop');
      res.setHeader('keep-alive', 'timeout=5');
      res.setHeader('proxy-authenticate', 'Basic');
      res.setHeader('x-app', 'kept');
      res.end('ok');
    });
    return true;
  });
}

describe('headers the backend receives and the client gets back', () => {
  const stack = useProxyStack({
    backend: startHeadersBackend,
    routes: (url) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/optional', backend: url, auth: 'optional' },
      { frontendHost: '*', pathPrefix: '/public', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/notoken', backend: url, forwardAccessToken: false },
      {
        frontendHost: '*',
        pathPrefix: '/custom',
        backend: url,
        identityHeaders: {
          'x-roles': 'groups',
          'x-user-id': 'sub',
          'x-mail': 'email',
          'x-title': 'title',
          'x-num': 'level',
          'x-obj': 'address',
        },
      },
    ],
  });
  let accessToken: string;
  beforeAll(async () => {
    accessToken = await stack.accessToken();
  });

  const get = async (path: string, headers: string[] = [], cookie: string | null = stack.sessionCookie) => {
    const res = await send(stack.url, { path, headers: cookie !== null ? ['Cookie', cookie, ...headers] : headers });
    return { res, rec: stack.backend.last() };
  };

  it('injects the session access token and x-user-* from the session', async () => {
    const { res, rec } = await get('/api/x');
    expect(res.status).toBe(200);
    expect(rec.headers.get('authorization')).toEqual([`Bearer ${accessToken}`]);
    expect(rec.headers.get('x-user-sub')).toEqual(['alice']);
    expect(rec.headers.get('x-user-email')).toEqual(['alice@example.test']);
    expect(rec.headers.get('x-user-name')).toEqual(['Alice']);
  });

  it('sets X-Forwarded-For/Proto/Host and X-Request-Id, and answers with the same X-Request-Id', async () => {
    const { res, rec } = await get('/api/x');
    expect(rec.headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(rec.headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(rec.headers.get('x-forwarded-host')).toEqual([new URL(stack.url).host]);
    const id = header(rec, 'x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers['x-request-id']).toBe(id);
    const { res: res2, rec: rec2 } = await get('/api/x', ['X-Request-Id', 'trace-abc-123']);
    expect(rec2.headers.get('x-request-id')).toEqual(['trace-abc-123']);
    expect(res2.headers['x-request-id']).toBe('trace-abc-123');
  });

  it("passes the client's own headers and cookies, never Gatehouse's cookies", async () => {
    const { rec } = await get(
      '/api/x',
      ['Accept', 'application/json', 'X-Custom', 'a', 'X-Custom', 'b'],
      `theme=dark; ${SESSION_COOKIE}=${stack.sessionValue}; __Host-gh_login=abc; lang=en`,
    );
    expect(header(rec, 'accept')).toBe('application/json');
    expect(rec.headers.get('x-custom')).toEqual(['a', 'b']);
    expect(rec.headers.get('cookie')).toEqual(['theme=dark; lang=en']);
    expect(header(rec, 'authorization')).toBe(`Bearer ${accessToken}`);
  });

  it('drops hop-by-hop request headers and the ones the client names in Connection', async () => {
    const { rec } = await get('/api/x', [
      'Connection',
      'keep-alive, X-Drop-Me',
      'X-Drop-Me',
      '1',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Proxy-Connection',
      'keep-alive',
      'Proxy-Authorization',
      'Basic Zm9vOmJhcg==',
      'Upgrade',
      'h2c',
      'HTTP2-Settings',
      'AAA',
      'X-Keep',
      'yes',
    ]);
    for (const name of ['x-drop-me', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'upgrade', 'http2-settings']) {
      expect(rec.headers.has(name), name).toBe(false);
    }
    // HTTP/1.1 keeps the upstream connection alive without saying so: any Connection header is Gatehouse's own.
    expect(header(rec, 'connection') ?? '').not.toMatch(/x-drop-me/i);
    expect(header(rec, 'x-keep')).toBe('yes');
  });

  it('passes backend Set-Cookie back and drops hop-by-hop response headers', async () => {
    const { res } = await get('/api/resp');
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toEqual(['app=1; Path=/; HttpOnly', 'theme=dark; Path=/']);
    expect(res.headers['x-app']).toBe('kept');
    expect(res.headers['x-backend-secret']).toBeUndefined();
    expect(res.headers['proxy-authenticate']).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
  });

  it('auth: optional forwards anonymous requests without identity, and with identity when there is a session', async () => {
    const anon = await get('/api/optional/x', [], null);
    expect(anon.res.status).toBe(200);
    expect([...anon.rec.headers.keys()].filter((h) => h.startsWith('x-user-'))).toEqual([]);
    expect(anon.rec.headers.has('authorization')).toBe(false);
    const known = await get('/api/optional/x');
    expect(header(known.rec, 'x-user-sub')).toBe('alice');
    expect(header(known.rec, 'authorization')).toBe(`Bearer ${accessToken}`);
  });

  it('auth: none sends no identity or token even with a session, and still keeps the session cookie back', async () => {
    const { res, rec } = await get('/api/public/x');
    expect(res.status).toBe(200);
    expect([...rec.headers.keys()].filter((h) => h.startsWith('x-user-'))).toEqual([]);
    expect(rec.headers.has('authorization')).toBe(false);
    expect(rec.headers.has('cookie')).toBe(false);
  });

  it("forwardAccessToken: false keeps identity headers but sends no token (and not the client's)", async () => {
    const { rec } = await get('/api/notoken/x', ['Authorization', 'Bearer forged']);
    expect(header(rec, 'x-user-sub')).toBe('alice');
    expect(rec.headers.has('authorization')).toBe(false);
  });

  it('identityHeaders replaces the default set; arrays are joined; unsafe values are dropped and logged', async () => {
    const { secret: id } = await stack.gh.app.sessions.create({
      claims: {
        sub: 'bob',
        email: 'bob@example.test\r\nx-user-admin: true',
        email_verified: true,
        name: 'Bob',
        groups: ['admins', 'ops'],
        title: 'Señor',
        level: 3,
        address: { street: 'x' },
      },
      tokens: { accessToken: 'bob-token' },
      accessTokenExpiresAt: Date.now() + 3600_000,
    });
    const logsBefore = stack.gh.logs.length;
    const { res, rec } = await get(
      '/api/custom/x',
      ['X-Roles', 'root', 'X_Roles', 'root', 'X-User-Id', 'root', 'X-Mail', 'ceo@corp'],
      `${SESSION_COOKIE}=${id}`,
    );
    expect(res.status).toBe(200);
    expect(rec.headers.get('x-roles')).toEqual(['admins,ops']);
    expect(rec.headers.get('x-user-id')).toEqual(['bob']);
    expect(rec.headers.get('x-num')).toEqual(['3']);
    expect(rec.headers.has('x-mail')).toBe(false);
    // Not ASCII, so encoded (identityHeaderEncoding's default, RFC 8187), no longer dropped.
    expect(rec.headers.get('x-title')).toEqual(["UTF-8''Se%C3%B1or"]);
    expect(rec.headers.has('x-obj')).toBe(false);
    expect(rec.headers.has('x_roles')).toBe(false);
    expect(rec.headers.has('x-user-admin')).toBe(false);
    for (const dflt of ['x-user-sub', 'x-user-email', 'x-user-name']) expect(rec.headers.has(dflt), dflt).toBe(false);
    expect(header(rec, 'authorization')).toBe('Bearer bob-token');
    const warned = stack.gh.logs.slice(logsBefore).filter((l) => /not a safe header value/.test(String(l['msg'])));
    expect(warned.map((l) => l['header']).sort()).toEqual(['x-mail']);
    expect(JSON.stringify(warned)).not.toContain('bob@example.test');
  });
});
