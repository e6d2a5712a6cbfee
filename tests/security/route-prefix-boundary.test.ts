import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy, usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * ROUTE-PREFIX (catalogue #79; http-proxy-middleware GHSA-64mm-vxmg-q3vj): a pathPrefix ends at a segment
 * boundary. `/api/ordersadmin` is not under `/orders`.
 */
describe('pathPrefix matches on segment boundaries only', () => {
  const proxy = useBareProxy({ routes: (orders) => [{ frontendHost: '*', pathPrefix: '/orders', backend: orders, auth: 'none' }] });
  const layout = usePolicyLayout();

  it.each(['/api/ordersadmin', '/api/orders-internal', '/api/orders.json', '/api/orders_x', '/api/orders~', '/api/order'])(
    '%s → 404 not_found, the /orders backend is not called',
    async (path) => {
      const before = proxy.backend.requests.length;
      expectError(await send(proxy.url, { path }), 404, 'not_found', path);
      expect(proxy.backend.requests.length).toBe(before);
    },
  );

  it.each(['/api/orders', '/api/orders/', '/api/orders/1', '/api/orders?x=1'])('%s → the /orders backend', async (path) => {
    const res = await send(proxy.url, { path });
    expect(res.status).toBe(200);
    expect(proxy.backend.last().url).toBe(path.slice(4));
  });

  it.each(['/api/adminx', '/api/admin-internal', '/api/admin.json', '/api/administrator'])(
    '%s goes to the mapping that really matches (the public catch-all), never to the /admin backend',
    async (path) => {
      const admin = layout.adminBackend.requests.length;
      const res = await send(layout.gh.url, { path });
      expect(res.status).toBe(200);
      expect(layout.catchAll.last().url).toBe(path.slice(4));
      expect(layout.adminBackend.requests.length).toBe(admin);
    },
  );
});
