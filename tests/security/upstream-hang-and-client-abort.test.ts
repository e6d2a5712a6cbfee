import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { send, startSlowBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * DOS-UPSTREAM (catalogue #132): a backend that accepts and never answers costs a bounded time (504 at the
 * mapping's timeoutMs), and clients that give up release their backend connections instead of leaking them.
 */
describe('hanging backends and clients that give up', () => {
  let openSockets = 0;
  const proxy = useBareProxy({
    backend: async () => {
      const hang = await startSlowBackend(Infinity);
      hang.server.on('connection', (s) => {
        openSockets++;
        s.on('close', () => openSockets--);
      });
      return hang;
    },
    routes: (hang) => [
      { frontendHost: '*', backend: hang, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/short', backend: hang, auth: 'none', timeoutMs: 200 },
    ],
  });

  it('answers 504 gateway_timeout at the mapping timeout and frees the backend connection', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => send(proxy.url, { path: '/api/short/x' })));
    for (const res of results) expectError(res, 504, 'gateway_timeout');
    await expect.poll(() => openSockets, { timeout: 3000 }).toBe(0);
  });

  it('30 clients that disconnect leave no backend request or socket behind', async () => {
    const before = proxy.backend.requests.length;
    const u = new URL(proxy.url);
    const reqs = Array.from({ length: 30 }, (_, i) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: `/api/x${i}`, agent: false });
      req.on('error', () => undefined);
      req.end();
      return req;
    });
    await proxy.backend.waitForRequests(before + 30);
    for (const req of reqs) req.destroy();
    await expect.poll(() => proxy.backend.requests.slice(before).every((r) => r.aborted), { timeout: 3000 }).toBe(true);
    await expect.poll(() => openSockets, { timeout: 3000 }).toBe(0);
    expect((await send(proxy.url, { path: '/healthz' })).status).toBe(200);
  });
});
