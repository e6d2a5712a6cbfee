import { describe, it } from 'vitest';
import { expectForwardedAs } from '../helpers/expect-forwarded.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PATH-DOTDOT (catalogue #73; Envoy CVE-2019-9901): a public route's prefix with a dot-dot segment, raw or
 * percent-encoded, must never reach /admin under the public route's policy. Gatehouse answers 400 before routing.
 */
describe('dot-dot traversal out of a public route', () => {
  const layout = usePolicyLayout();

  it.each([
    '/api/public/../admin/users',
    '/api/public/%2e%2e/admin/users',
    '/api/public/%2E%2E/admin',
    '/api/public/.%2e/admin',
    '/api/public/%2e./admin',
    '/api/public/..%2fadmin',
    '/api/public/%252e%252e/admin',
    '/api/public\\..\\admin',
    '/api/public/..',
    '/api/public/%2e%2e',
    '/api/public/../admin?x=1',
    '/api/x/../../admin',
  ])('%s → 400 invalid_path, no backend called', async (path) => {
    await layout.refuses(path, 400, 'invalid_path');
  });

  it('the same path without traversal still works (the check is not a blanket refusal)', async () => {
    await expectForwardedAs(layout.gh.url, '/api/public/..well-known/x', layout.publicBackend, '/public/..well-known/x');
  });
});
