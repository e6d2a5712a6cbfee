import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * PATH-DOTSLASH (catalogue #76; cisagov/Malcolm#1106, `/./upload` skipped RBAC): `/./admin`, `//admin` and
 * `;` parameters must not slip past the /admin mapping into the public catch-all. They are refused with 400.
 */
describe('dot segments, empty segments and path parameters', () => {
  const layout = usePolicyLayout();

  it.each([
    '/api/./admin',
    '/api/%2e/admin',
    '/api//admin',
    '/api/public//admin',
    '/api/admin;x=1',
    '/api/admin;/users',
    '/api/public;/../admin',
    '/api/.',
    '/api/admin/./users',
    '/api///admin',
  ])('%s → 400 invalid_path, no backend called', async (path) => {
    const before = layout.received();
    expectError(await send(layout.gh.url, { path }), 400, 'invalid_path', path);
    expect(layout.received()).toBe(before);
  });

  it('a trailing slash keeps the route policy: /api/admin/ is as protected as /api/admin', async () => {
    const before = layout.received();
    expectError(await send(layout.gh.url, { path: '/api/admin/' }), 401, 'unauthorized');
    expectError(await send(layout.gh.url, { path: '/api/admin' }), 401, 'unauthorized');
    expect(layout.received()).toBe(before);
  });
});
