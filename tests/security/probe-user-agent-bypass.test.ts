import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PROBE-BYPASS (catalogue #84; oauth2-proxy GHSA-5hvv-m4w4-gf6v): a health-checker User-Agent never skips
 * authentication, and probe endpoints match their exact paths only.
 */
describe('health-check user agents and probe paths', () => {
  const layout = usePolicyLayout();

  it.each(['kube-probe/1.30', 'GoogleHC/1.0', 'ELB-HealthChecker/2.0', 'Consul Health Check'])(
    'User-Agent %s on /api/private → 401 unauthorized',
    async (ua) => {
      const before = layout.received();
      expectError(await send(layout.gh.url, { path: '/api/private/data', headers: ['User-Agent', ua] }), 401, 'unauthorized', ua);
      expect(layout.received()).toBe(before);
    },
  );

  it.each(['/api/healthz', '/api/private/healthz', '/api/private/readyz', '/api/admin/healthz?probe=1'])(
    "%s is an ordinary /api path under its mapping's policy",
    async (path) => {
      const adminBefore = layout.adminBackend.requests.length;
      const res = await send(layout.gh.url, { path, headers: ['User-Agent', 'kube-probe/1.30'] });
      if (path.startsWith('/api/healthz')) {
        expect(res.status).toBe(200);
        expect(layout.catchAll.last().url).toBe('/healthz');
      } else {
        expectError(res, 401, 'unauthorized', path);
      }
      expect(layout.adminBackend.requests.length).toBe(adminBefore);
    },
  );

  it('/healthz itself answers without touching a backend', async () => {
    const before = layout.received();
    expect((await send(layout.gh.url, { path: '/healthz' })).status).toBe(200);
    expect(layout.received()).toBe(before);
  });
});
