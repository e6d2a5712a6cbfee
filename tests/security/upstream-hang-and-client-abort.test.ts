import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startSlowBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

/**
 * DOS-UPSTREAM (catalogue #132): a backend that accepts and never answers costs a bounded time (504 at the
 * mapping's timeoutMs), and clients that give up release their backend connections instead of leaking them.
 */
describe('hanging backends and clients that give up', () => {
  let hang: TestBackend;
  let gh: TestGatehouse;
  let openSockets = 0;
  beforeAll(async () => {
    hang = await startSlowBackend(Infinity);
    hang.server.on('connection', (s) => {
      openSockets++;
      s.on('close', () => openSockets--);
    });
    gh = await startBareGatehouse(mappingsYaml([
      { frontendHost: '*', backend: hang.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/short', backend: hang.url, auth: 'none', timeoutMs: 200 },
    ]));
  });
  afterAll(async () => {
    await gh?.close();
    await hang?.close();
  });

  it('answers 504 gateway_timeout at the mapping timeout and frees the backend connection', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => send(gh.url, { path: '/api/short/x' })));
    for (const res of results) expectError(res, 504, 'gateway_timeout');
    await expect.poll(() => openSockets, { timeout: 3000 }).toBe(0);
  });

  it('30 clients that disconnect leave no backend request or socket behind', async () => {
    const before = hang.requests.length;
    const u = new URL(gh.url);
    const reqs = Array.from({ length: 30 }, (_, i) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: `/api/x${i}`, agent: false });
      req.on('error', () => undefined);
      req.end();
      return req;
    });
    await hang.waitForRequests(before + 30);
    for (const req of reqs) req.destroy();
    await expect.poll(() => hang.requests.slice(before).every((r) => r.aborted), { timeout: 3000 }).toBe(true);
    await expect.poll(() => openSockets, { timeout: 3000 }).toBe(0);
    expect((await send(gh.url, { path: '/healthz' })).status).toBe(200);
  });
});
