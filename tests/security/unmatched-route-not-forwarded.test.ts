import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml, SESSION_COOKIE, startBareGatehouse } from '../helpers/proxy-stack.ts';

/**
 * ROUTE-DEFAULT (catalogue #82; BBA §6.1.3.6): a path or host no mapping names is a 404 from Gatehouse. The
 * user's token goes only to configured backends, never to whatever happens to be nearby.
 */
describe('requests no mapping matches', () => {
  let orders: TestBackend;
  let gh: TestGatehouse;
  let cookie: string;
  beforeAll(async () => {
    orders = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: 'app.example.com', pathPrefix: '/orders', backend: orders.url }]));
    const { secret: id } = await gh.app.sessions.create({ claims: { sub: 'alice' }, tokens: { accessToken: 'alice-token' }, accessTokenExpiresAt: Date.now() + 3600_000 });
    cookie = `${SESSION_COOKIE}=${id}`;
  });
  afterAll(async () => {
    await gh?.close();
    await orders?.close();
  });

  it.each([
    ['app.example.com', '/api/users'],
    ['app.example.com', '/api'],
    ['app.example.com', '/api/ordersx'],
    ['other.example.com', '/api/orders'],
    ['app.example.com.evil.example', '/api/orders'],
    ['127.0.0.1', '/api/orders'],
  ])('Host %s %s with a session → 404 not_found, nothing forwarded', async (host, path) => {
    const before = orders.requests.length;
    expectError(await send(gh.url, { path, headers: ['Host', host, 'Cookie', cookie] }), 404, 'not_found', `${host}${path}`);
    expect(orders.requests.length).toBe(before);
  });

  it('the mapped path gets the token', async () => {
    const res = await send(gh.url, { path: '/api/orders/1', headers: ['Host', 'app.example.com', 'Cookie', cookie] });
    expect(res.status).toBe(200);
    expect(orders.last().headers.get('authorization')).toEqual(['Bearer alice-token']);
  });
});
