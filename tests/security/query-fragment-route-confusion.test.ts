import { describe, expect, it } from 'vitest';
import { sendRaw } from '../helpers/backends.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { expectForwardedAs } from '../helpers/expect-forwarded.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PATH-QUERY-FRAG (catalogue #77; oauth2-proxy GHSA-7rh7-c77v-6434, GHSA-pxq7-h93f-9jrg): routing and the
 * auth policy see the path only. A query or fragment that names a public path changes nothing, and a raw `#`
 * in the request-target is refused.
 */
describe('query and fragment do not pick the route', () => {
  const layout = usePolicyLayout();

  it.each([
    '/api/private/data?x=/public',
    '/api/private/data?/public',
    '/api/private/data?redirect=/api/public/x',
    '/api/private/x?%23/public',
  ])('%s → 401 unauthorized (the private mapping), no backend called', async (path) => {
    await layout.refuses(path, 401, 'unauthorized');
  });

  it('an encoded # stays opaque: /api/private%23/public is neither /private nor /public', async () => {
    const publicBefore = layout.publicBackend.requests.length;
    // Not under /private (no segment boundary), so the catch-all gets the raw bytes, which no backend reads as /public.
    await expectForwardedAs(layout.gh.url, '/api/private%23/public', layout.catchAll, '/private%23/public');
    expect(layout.publicBackend.requests.length).toBe(publicBefore);
  });

  it.each(['/api/private/data#/public', '/api/public#/../admin', '/api/private?x=1#/public'])(
    'a raw # in %s → 400 invalid_path',
    async (path) => {
      const raw = `GET ${path} HTTP/1.1\r\nHost: ${new URL(layout.gh.url).host}\r\n\r\n`;
      await expectErrorUnforwarded(
        () => layout.received(),
        () => sendRaw(layout.gh.url, raw),
        400,
        'invalid_path',
      );
    },
  );
});
