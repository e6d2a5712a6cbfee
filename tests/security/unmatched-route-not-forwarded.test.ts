import { beforeAll, describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { SESSION_COOKIE, useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * ROUTE-DEFAULT (catalogue #82; BBA §6.1.3.6): a path or host no mapping names is a 404 from Gatehouse. The
 * user's token goes only to configured backends, never to whatever happens to be nearby.
 */
describe('requests no mapping matches', () => {
  const proxy = useBareProxy({ routes: (orders) => [{ frontendHost: 'app.example.com', pathPrefix: '/orders', backend: orders }] });
  let cookie: string;
  beforeAll(async () => {
    const { secret: id } = await proxy.gh.app.sessions.create({
      claims: { sub: 'alice' },
      tokens: { accessToken: 'alice-token' },
      accessTokenExpiresAt: Date.now() + 3600_000,
    });
    cookie = `${SESSION_COOKIE}=${id}`;
  });

  it.each([
    ['app.example.com', '/api/users'],
    ['app.example.com', '/api'],
    ['app.example.com', '/api/ordersx'],
    ['other.example.com', '/api/orders'],
    ['app.example.com.evil.example', '/api/orders'],
    ['127.0.0.1', '/api/orders'],
  ])('Host %s %s with a session → 404 not_found, nothing forwarded', async (host, path) => {
    const before = proxy.backend.requests.length;
    expectError(await send(proxy.url, { path, headers: ['Host', host, 'Cookie', cookie] }), 404, 'not_found', `${host}${path}`);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('the mapped path gets the token', async () => {
    const res = await send(proxy.url, { path: '/api/orders/1', headers: ['Host', 'app.example.com', 'Cookie', cookie] });
    expect(res.status).toBe(200);
    expect(proxy.backend.last().headers.get('authorization')).toEqual(['Bearer alice-token']);
  });
});
