import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

const OVERRIDES = ['X-Forwarded-Uri', 'X-Original-URL', 'X-Original-URI', 'X-Rewrite-URL', 'X-Forwarded-Prefix', 'X-Forwarded-Path'];

/**
 * FWD-URI (catalogue #85; oauth2-proxy GHSA-7x63-xv5r-3p2x): headers that name a different path are ignored
 * for routing and policy, and stripped before forwarding so a backend framework cannot act on them either.
 */
describe.each([
  ['with no trusted proxy (default)', {}],
  ['with TRUST_PROXY=127.0.0.1', { TRUST_PROXY: '127.0.0.1' }],
])('URL-override headers %s', (_label, env) => {
  const layout = usePolicyLayout(env);

  it('do not route /api/private to a public mapping', async () => {
    const before = layout.received();
    const headers = OVERRIDES.flatMap((h) => [h, '/api/public/x']);
    expectError(await send(layout.gh.url, { path: '/api/private/data', headers }), 401, 'unauthorized');
    expect(layout.received()).toBe(before);
  });

  it('are not forwarded', async () => {
    const res = await send(layout.gh.url, { path: '/api/public/x', headers: OVERRIDES.flatMap((h) => [h, '/admin/users']) });
    expect(res.status).toBe(200);
    const rec = layout.publicBackend.last();
    expect(rec.url).toBe('/public/x');
    for (const h of OVERRIDES) expect(rec.headers.has(h.toLowerCase()), h).toBe(false);
  });
});
