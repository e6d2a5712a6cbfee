import { describe, expect, it } from 'vitest';
import type { FileConfig, MappingConfig } from '../../src/config/types.ts';
import { compileRoutes, parseHost } from '../../src/policy/route-table.ts';

const DEFAULTS = { auth: 'required', timeoutMs: 30000, websocket: true, forwardAccessToken: true, passAuthorization: false } as const;

function table(mappings: ReadonlyArray<Partial<MappingConfig> & { frontendHost: string; backend: string }>, defaultBackend?: string) {
  const file: FileConfig = {
    allowedOrigins: [],
    mappings: mappings.map((m) => ({ ...DEFAULTS, ...m })),
    ...(defaultBackend ? { defaultBackend } : {}),
  };
  return compileRoutes(file);
}

/** The backend origin a request resolves to, or undefined. */
const to = (t: ReturnType<typeof compileRoutes>, host: string, port: number, path: string) => t.resolve(host, port, path)?.origin;

describe('compileRoutes precedence', () => {
  const t = table(
    [
      { frontendHost: '*', backend: 'http://any.internal' },
      { frontendHost: '*', pathPrefix: '/any', backend: 'http://any-prefix.internal' },
      { frontendHost: '*.example.com', backend: 'http://wild.internal' },
      { frontendHost: '*.b.example.com', backend: 'http://wild-b.internal' },
      { frontendHost: '*.example.com', pathPrefix: '/v2', backend: 'http://wild-v2.internal' },
      { frontendHost: 'App.Example.COM', backend: 'http://exact.internal' },
      { frontendHost: 'app.example.com', pathPrefix: '/v2', backend: 'http://exact-v2.internal' },
      { frontendHost: 'app.example.com', pathPrefix: '/V2/Admin', backend: 'http://exact-v2-admin.internal' },
      { frontendHost: 'app.example.com', frontendPort: 8443, backend: 'http://exact-8443.internal' },
      { frontendHost: 'app.example.com', frontendPort: 8443, pathPrefix: '/v2', backend: 'http://exact-8443-v2.internal' },
      { frontendHost: '[::1]', backend: 'http://ipv6.internal' },
    ],
    'http://default.internal',
  );

  it.each([
    ['app.example.com', 443, '/x', 'http://exact.internal'],
    ['app.example.com', 443, '/', 'http://exact.internal'],
    ['app.example.com', 443, '/v2', 'http://exact-v2.internal'],
    ['app.example.com', 443, '/v2/', 'http://exact-v2.internal'],
    ['app.example.com', 443, '/V2/x', 'http://exact-v2.internal'],
    ['app.example.com', 443, '/v2x', 'http://exact.internal'],
    ['app.example.com', 443, '/v2.json', 'http://exact.internal'],
    ['app.example.com', 443, '/v2/admin', 'http://exact-v2-admin.internal'],
    ['app.example.com', 443, '/v2/admin/users', 'http://exact-v2-admin.internal'],
    ['app.example.com', 443, '/v2/adminx', 'http://exact-v2.internal'],
    ['app.example.com', 8443, '/x', 'http://exact-8443.internal'],
    ['app.example.com', 8443, '/v2/x', 'http://exact-8443-v2.internal'],
    ['app.example.com', 8443, '/v2/admin', 'http://exact-v2-admin.internal'],
    // exact host beats a wildcard with a longer prefix: the host tier decides first
    ['app.example.com', 443, '/any/x', 'http://exact.internal'],
    ['x.example.com', 443, '/x', 'http://wild.internal'],
    ['x.example.com', 443, '/v2/x', 'http://wild-v2.internal'],
    ['a.b.c.example.com', 443, '/x', 'http://wild.internal'],
    ['x.b.example.com', 443, '/x', 'http://wild-b.internal'],
    // within the wildcard tier the longest suffix is the more specific host, as exact beats wildcard
    ['x.b.example.com', 443, '/v2/x', 'http://wild-b.internal'],
    ['example.com', 443, '/x', 'http://any.internal'],
    ['b.example.com', 443, '/x', 'http://wild.internal'],
    ['notexample.com', 443, '/x', 'http://any.internal'],
    ['other.test', 443, '/any', 'http://any-prefix.internal'],
    ['other.test', 443, '/anything', 'http://any.internal'],
    ['[::1]', 443, '/x', 'http://ipv6.internal'],
  ])('%s:%d %s → %s', (host, port, path, origin) => {
    expect(to(t, host, port, path)).toBe(origin);
  });

  it('host-only beats defaultBackend, and defaultBackend takes what nothing matches', () => {
    const t2 = table(
      [
        { frontendHost: 'app.example.com', pathPrefix: '/v2', backend: 'http://v2.internal' },
        { frontendHost: 'api.example.com', backend: 'http://api.internal' },
      ],
      'http://default.internal/base/',
    );
    expect(to(t2, 'app.example.com', 443, '/v2/x')).toBe('http://v2.internal');
    expect(to(t2, 'app.example.com', 443, '/v3')).toBe('http://default.internal');
    expect(to(t2, 'api.example.com', 443, '/v3')).toBe('http://api.internal');
    expect(to(t2, 'other.example.com', 443, '/')).toBe('http://default.internal');
    const fallback = t2.resolve('other.example.com', 443, '/');
    expect(fallback?.index).toBe(-1);
    expect(fallback?.basePath).toBe('/base');
    expect(fallback?.auth).toBe('required');
  });

  it('no match and no defaultBackend → undefined', () => {
    const t3 = table([{ frontendHost: 'app.example.com', pathPrefix: '/orders', backend: 'http://orders.internal' }]);
    expect(t3.resolve('app.example.com', 443, '/ordersadmin')).toBeUndefined();
    expect(t3.resolve('app.example.com', 443, '/orders-internal')).toBeUndefined();
    expect(t3.resolve('app.example.com', 443, '/orders.json')).toBeUndefined();
    expect(t3.resolve('other.example.com', 443, '/orders')).toBeUndefined();
    expect(to(t3, 'app.example.com', 443, '/orders/1')).toBe('http://orders.internal');
    expect(to(t3, 'app.example.com', 443, '/orders')).toBe('http://orders.internal');
  });

  it('compiles per-mapping options', () => {
    const t4 = table([
      {
        frontendHost: 'a.example.com',
        backend: 'http://a.internal/base/path//',
        auth: 'none',
        timeoutMs: 1234,
        websocket: false,
        forwardAccessToken: false,
        identityHeaders: { 'X-Roles': 'groups', 'x-user-id': 'sub' },
      },
    ]);
    const r = t4.resolve('a.example.com', 443, '/');
    expect(r).toMatchObject({
      origin: 'http://a.internal',
      basePath: '/base/path',
      auth: 'none',
      timeoutMs: 1234,
      websocket: false,
      forwardAccessToken: false,
    });
    expect(r?.identityHeaders).toEqual([
      ['x-roles', 'groups'],
      ['x-user-id', 'sub'],
    ]);
    expect(r?.extraStrip).toEqual(['x-roles']);
    const plain = table([{ frontendHost: 'a.example.com', backend: 'http://a.internal' }]).resolve('a.example.com', 443, '/');
    expect(plain?.identityHeaders.map(([h]) => h)).toEqual(['x-user-sub', 'x-user-email', 'x-user-name']);
    expect(plain?.basePath).toBe('');
    expect(plain?.extraStrip).toEqual([]);
  });

  it("strips every mapping's custom identity header names on every route, defaultBackend included", () => {
    const t5 = table(
      [
        { frontendHost: 'a.example.com', backend: 'http://a.internal', identityHeaders: { 'x-roles': 'groups' } },
        { frontendHost: 'b.example.com', backend: 'http://a.internal', identityHeaders: { 'X-Tenant': 'tid', 'x-user-id': 'sub' } },
        { frontendHost: 'c.example.com', backend: 'http://a.internal' },
      ],
      'http://default.internal',
    );
    for (const host of ['a.example.com', 'b.example.com', 'c.example.com', 'd.example.com']) {
      expect(t5.resolve(host, 443, '/')?.extraStrip, host).toEqual(['x-roles', 'x-tenant']);
    }
  });
});

describe('parseHost', () => {
  it.each([
    ['app.example.com', 443, { host: 'app.example.com', port: 443 }],
    ['APP.Example.COM', 443, { host: 'app.example.com', port: 443 }],
    ['app.example.com.', 443, { host: 'app.example.com', port: 443 }],
    ['app.example.com.:8443', 443, { host: 'app.example.com', port: 8443 }],
    ['app.example.com:80', 443, { host: 'app.example.com', port: 80 }],
    ['app.example.com', 80, { host: 'app.example.com', port: 80 }],
    ['127.0.0.1:3000', 80, { host: '127.0.0.1', port: 3000 }],
    ['localhost', 80, { host: 'localhost', port: 80 }],
    ['[::1]', 443, { host: '[::1]', port: 443 }],
    ['[::1]:8080', 443, { host: '[::1]', port: 8080 }],
    ['[0:0:0:0:0:0:0:1]:8080', 443, { host: '[::1]', port: 8080 }],
    ['[2001:DB8::0:1]', 443, { host: '[2001:db8::1]', port: 443 }],
    ['[2001:DB8::1]:1', 443, { host: '[2001:db8::1]', port: 1 }],
    ['[::ffff:127.0.0.1]', 80, { host: '[::ffff:7f00:1]', port: 80 }],
    ['a:65535', 80, { host: 'a', port: 65535 }],
  ])('%s (default %d)', (value, defaultPort, expected) => {
    expect(parseHost(value, defaultPort)).toEqual(expected);
  });

  it.each([
    '',
    ':80',
    'a:',
    'a:0',
    'a:65536',
    'a:99999',
    'a:-1',
    'a:8o',
    'a:80:80',
    'a b',
    'a/b',
    'a@b',
    'user@a',
    'a\\b',
    'a%2eb',
    '[::1',
    '[::1]x',
    '[::1]:',
    '[::1]:0',
    '[zz::1]',
    '[]',
    '::1',
    'a..b:80:',
    `${'a'.repeat(254)}`,
    'é.example',
  ])('rejects %j', (value) => {
    expect(parseHost(value, 443)).toBeUndefined();
  });
});
