import { describe, it } from 'vitest';
import { expectForwardedAs } from '../helpers/expect-forwarded.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PATH-ENCSLASH (catalogue #74; Envoy CVE-2021-29492): an encoded `/` or `\` lets a backend that decodes
 * once see a different path than the router did. Gatehouse refuses them (and never decodes twice).
 */
describe('encoded slash and backslash', () => {
  const layout = usePolicyLayout();

  it.each([
    '/api/orders%2F..%2Fadmin',
    '/api/public%2fadmin',
    '/api/public%2Fadmin',
    '/api/public%5cadmin',
    '/api/public%5Cadmin',
    '/api/x%252f..',
    '/api/public/%252fadmin',
    '/api/public/a%2f%2e%2e%2fadmin',
  ])('%s → 400 invalid_path, no backend called', async (path) => {
    await layout.refuses(path, 400, 'invalid_path');
  });

  it('an encoded slash in the query is opaque and allowed', async () => {
    await expectForwardedAs(layout.gh.url, '/api/public/search?q=a%2Fb%5c', layout.publicBackend, '/public/search?q=a%2Fb%5c');
  });
});
