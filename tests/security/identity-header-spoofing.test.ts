import { describe, expect, it } from 'vitest';
import { send, type RecordedRequest } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const SPOOFED = [
  'X-User-Id',
  'admin',
  'X-User-Email',
  'ceo@corp.example',
  'X-User-Roles',
  'admin',
  'X-User-Sub',
  'admin',
  'X-User-Name',
  'CEO',
  'X_User_Email',
  'ceo@corp.example',
  'x-user_sub',
  'admin',
  'X_USER_ROLES',
  'admin',
  'x-user-email',
  'second@corp.example',
  'X-Roles',
  'admin',
  'X_Roles',
  'admin',
];

const identityLike = (rec: RecordedRequest) =>
  [...rec.headers.keys()].filter((h) => h.replace(/_/g, '-').startsWith('x-user-') || h.replace(/_/g, '-') === 'x-roles');

/**
 * HDR-SPOOF (catalogue #86; RFC 9700 §4.13): client-sent identity headers, in any spelling, never reach a
 * backend. It sees Gatehouse's values on authenticated requests and none on anonymous ones.
 */
describe('identity header spoofing', () => {
  const stack = useProxyStack({
    routes: (url) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/public', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/optional', backend: url, auth: 'optional' },
      { frontendHost: '*', pathPrefix: '/custom', backend: url, identityHeaders: { 'x-roles': 'groups', 'x-user-id': 'sub' } },
    ],
  });

  it('authenticated: only Gatehouse-computed x-user-* values arrive', async () => {
    const res = await send(stack.url, { path: '/api/x', headers: ['Cookie', stack.sessionCookie, ...SPOOFED] });
    expect(res.status).toBe(200);
    const rec = stack.backend.last();
    expect(identityLike(rec).sort()).toEqual(['x-user-email', 'x-user-name', 'x-user-sub']);
    expect(rec.headers.get('x-user-sub')).toEqual(['alice']);
    expect(rec.headers.get('x-user-email')).toEqual(['alice@example.test']);
    expect(rec.headers.get('x-user-name')).toEqual(['Alice']);
  });

  it.each([
    ['/api/public/x', true],
    ['/api/public/x', false],
    ['/api/optional/x', false],
  ] as const)('anonymous %s (session cookie sent: %s): no identity header at all', async (path, withCookie) => {
    const res = await send(stack.url, { path, headers: [...(withCookie ? ['Cookie', stack.sessionCookie] : []), ...SPOOFED] });
    expect(res.status).toBe(200);
    expect(identityLike(stack.backend.last())).toEqual([]);
  });

  it("custom identityHeaders: the configured names are Gatehouse's alone, in either spelling", async () => {
    const res = await send(stack.url, { path: '/api/custom/x', headers: ['Cookie', stack.sessionCookie, ...SPOOFED] });
    expect(res.status).toBe(200);
    const rec = stack.backend.last();
    // alice has no groups claim, so x-roles is absent rather than the client's "admin".
    expect(identityLike(rec)).toEqual(['x-user-id']);
    expect(rec.headers.get('x-user-id')).toEqual(['alice']);
  });
});
