import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PATH-CASE (catalogue #75; CodeQL js/case-sensitive-middleware-path): `/api/ADMIN` must get the same decision
 * as `/api/admin`, and `/API/...` must not reach a backend some other way.
 */
describe('path case', () => {
  const layout = usePolicyLayout();

  it.each(['/api/admin/users', '/api/ADMIN/users', '/api/Admin', '/api/aDmIn/x?y=1', '/api/PRIVATE/data'])(
    '%s is matched case-insensitively to the protected mapping: 401 unauthorized, no backend called',
    async (path) => {
      const before = layout.received();
      expectError(await send(layout.gh.url, { path }), 401, 'unauthorized', path);
      expect(layout.received()).toBe(before);
    },
  );

  it.each(['/API/admin/users', '/Api/ADMIN', '/API/public/x'])('%s is not the proxy at all: no backend called', async (path) => {
    const before = layout.received();
    const res = await send(layout.gh.url, { path });
    expect(res.status).toBe(404);
    expect(layout.received()).toBe(before);
  });
});
