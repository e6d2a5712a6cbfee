import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * A route rule's `rateLimit` (issue 16: "configurable per mapping and per route rule"): the requests a rule
 * matches count in a bucket of their own under the rule's limit; `false` switches the limit off for them; a rule
 * without one shares the mapping's limit and bucket.
 */
describe('rate limits per route rule', () => {
  const stack = useProxyStack({
    routes: (url) => [
      {
        frontendHost: '*',
        backend: url,
        rateLimit: { requests: 100, windowSeconds: 60 },
        rules: [
          { match: { path: '/login-like/*' }, rateLimit: { requests: 2, windowSeconds: 60 } },
          { match: { path: '/health/*' }, rateLimit: false },
          { match: { path: '/admin/*' }, methods: ['GET'] },
        ],
      },
    ],
  });
  const get = (path: string) => send(stack.url, { path, headers: ['Cookie', stack.sessionCookie] });

  it("a rule's own limit has its own bucket: past it 429, while the mapping's bucket is untouched", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await get('/api/login-like/x');
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"mapping-0-rule-0";q=2;w=60');
    }
    const before = stack.backend.requests.length;
    expectError(await get('/api/Login-Like/y/'), 429, 'too_many_requests');
    expect(stack.backend.requests.length).toBe(before);
    const other = await get('/api/orders');
    expect(other.status).toBe(200);
    expect(other.headers['ratelimit-policy']).toBe('"mapping-0";q=100;w=60');
  });

  it("false: no limit on the rule's requests; no rateLimit: the mapping's limit and bucket", async () => {
    const off = await get('/api/health/live');
    expect(off.status).toBe(200);
    expect(off.headers['ratelimit-policy']).toBeUndefined();
    const shared = await get('/api/admin/users');
    expect(shared.status).toBe(200);
    expect(shared.headers['ratelimit-policy']).toBe('"mapping-0";q=100;w=60');
    const remaining = (res: { headers: Record<string, unknown> }) => Number(/;r=(\d+);/.exec(String(res.headers['ratelimit']))?.[1]);
    const next = await get('/api/orders');
    expect(remaining(next)).toBe(remaining(shared) - 1);
  });
});
