import { beforeAll, describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * HDR-HOPBYHOP (catalogue #89; Fabio CVE-2025-48865; RFC 9110 §7.6.1): a client lists trusted headers in
 * `Connection` hoping the proxy deletes them after injecting them. Gatehouse removes the client's named
 * headers first and injects its own afterwards, so the backend still gets Gatehouse's token and identity.
 */
describe('Connection header naming injected headers', () => {
  const stack = useProxyStack();
  let token: string;
  beforeAll(async () => {
    token = await stack.accessToken();
  });

  it.each([
    'keep-alive, X-User-Email, Authorization, X-Forwarded-For, X-User-Id',
    'x-user-sub, x-user-name, x-user-email, authorization, x-forwarded-proto, x-forwarded-host, x-request-id, cookie',
    'Authorization',
    'close, X-USER-EMAIL,AUTHORIZATION',
  ])('Connection: %s', async (connection) => {
    const res = await send(stack.url, {
      path: '/api/x',
      headers: [
        'Cookie',
        `${stack.sessionCookie}; theme=dark`,
        'Connection',
        connection,
        'Authorization',
        'Bearer forged',
        'X-User-Id',
        'admin',
        'X-Forwarded-For',
        '10.0.0.1',
      ],
    });
    expect(res.status).toBe(200);
    const rec = stack.backend.last();
    expect(rec.headers.get('authorization')).toEqual([`Bearer ${token}`]);
    expect(rec.headers.get('x-user-sub')).toEqual(['alice']);
    expect(rec.headers.get('x-user-email')).toEqual(['alice@example.test']);
    expect(rec.headers.get('x-user-name')).toEqual(['Alice']);
    expect(rec.headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(rec.headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(rec.headers.get('x-request-id')?.length).toBe(1);
    expect(rec.headers.has('x-user-id')).toBe(false);
    expect(rec.headers.get('connection')?.join(',') ?? '').not.toMatch(/user|authorization|forwarded/i);
  });

  it('a header the client names in Connection and Gatehouse does not own is removed', async () => {
    await send(stack.url, {
      path: '/api/x',
      headers: ['Cookie', stack.sessionCookie, 'Connection', 'X-Debug-Token', 'X-Debug-Token', 'secret'],
    });
    expect(stack.backend.last().headers.has('x-debug-token')).toBe(false);
  });
});
