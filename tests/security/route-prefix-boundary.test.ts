import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml, startBareGatehouse, startPolicyLayout, type PolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * ROUTE-PREFIX (catalogue #79; http-proxy-middleware GHSA-64mm-vxmg-q3vj): a pathPrefix ends at a segment
 * boundary. `/api/ordersadmin` is not under `/orders`.
 */
describe('pathPrefix matches on segment boundaries only', () => {
  let orders: TestBackend;
  let gh: TestGatehouse;
  let layout: PolicyLayout;
  beforeAll(async () => {
    orders = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', pathPrefix: '/orders', backend: orders.url, auth: 'none' }]));
    layout = await startPolicyLayout();
  });
  afterAll(async () => {
    await gh?.close();
    await orders?.close();
    await layout?.close();
  });

  it.each(['/api/ordersadmin', '/api/orders-internal', '/api/orders.json', '/api/orders_x', '/api/orders~', '/api/order'])(
    '%s → 404 not_found, the /orders backend is not called',
    async (path) => {
      const before = orders.requests.length;
      expectError(await send(gh.url, { path }), 404, 'not_found', path);
      expect(orders.requests.length).toBe(before);
    },
  );

  it.each(['/api/orders', '/api/orders/', '/api/orders/1', '/api/orders?x=1'])('%s → the /orders backend', async (path) => {
    const res = await send(gh.url, { path });
    expect(res.status).toBe(200);
    expect(orders.last().url).toBe(path.slice(4));
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
