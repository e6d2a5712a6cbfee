import { describe, it } from 'vitest';
import { expectForwardedAs } from '../helpers/expect-forwarded.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * `/api/%61dmin` is `/api/admin` to any backend that normalises percent-encoded unreserved characters
 * (RFC 3986 §6.2.2.2; Go's ServeMux, Spring, most WAF-less stacks), but a prefix match on the raw bytes
 * misses the /admin mapping and lands on the public catch-all. Gatehouse refuses these paths outright.
 */
describe('percent-encoded unreserved characters in the path', () => {
  const layout = usePolicyLayout();

  it.each([
    '/api/%61dmin/users',
    '/api/%41DMIN/users',
    '/api/a%64min',
    '/api/admi%6E',
    '/api/priv%61te/data',
    '/api/%70ublic/../admin',
    '/api/admin%2Dx',
  ])('%s → 400 invalid_path, never the public catch-all', async (path) => {
    await layout.refuses(path, 400, 'invalid_path');
  });

  it('percent-encoding of reserved and non-ASCII characters is still forwarded byte for byte', async () => {
    await expectForwardedAs(layout.gh.url, '/api/files/a%20b%3A%C3%A9', layout.catchAll, '/files/a%20b%3A%C3%A9');
  });
});
