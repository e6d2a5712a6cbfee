import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * Route rules against path spellings (catalogue: path-case policy bypass, encoded traversal, dot segments): a
 * backend that lowercases, drops a trailing slash, resolves dot segments or decodes escapes serves `/ADMIN/x/`,
 * `/admin/./x` or `/%61dmin/x` as `/admin/x`. Each such spelling either meets the rule `/admin/x` meets, or is
 * refused before any rule or backend sees it; none is forwarded past the rule.
 */
describe('path spellings cannot get past a route rule', () => {
  const proxy = useBareProxy({
    mapping: {
      rules: [
        { match: { path: '/private/*' }, auth: 'required' },
        { match: { path: '/admin/:id/audit' }, methods: ['GET'] },
      ],
    },
  });
  const reached = () => proxy.backend.requests.length;

  it.each(['/api/private/x', '/api/Private/x', '/api/PRIVATE/X/', '/api/private/', '/api/private', '/api/private?x=1'])(
    'the auth: required rule meets %s',
    async (path) => {
      await expectErrorUnforwarded(reached, () => send(proxy.url, { path }), 401, 'unauthorized');
    },
  );

  it.each(['/api/admin/7/audit', '/api/Admin/7/AUDIT', '/api/admin/7/audit/', '/api/ADMIN/Abc/Audit/'])(
    'the GET-only rule meets DELETE %s',
    async (path) => {
      await expectErrorUnforwarded(reached, () => send(proxy.url, { method: 'DELETE', path }), 405, 'method_not_allowed');
    },
  );

  it.each([
    '/api/private/./x',
    '/api/x/../private/x',
    '/api/%2e%2e/private/x',
    '/api//private/x',
    '/api/%70rivate/x',
    '/api/private%2fx',
    '/api/priv%61te/x',
    '/api/admin/7/audit;x',
    '/api/admin/7/%61udit',
  ])('%s is refused before any rule', async (path) => {
    await expectErrorUnforwarded(reached, () => send(proxy.url, { method: 'DELETE', path }), 400, 'invalid_path');
  });

  it('paths outside the rules get the mapping (auth: none, any method)', async () => {
    for (const path of ['/api/privatex', '/api/public/private/x', '/api/admin/7/audits', '/api/admin/7']) {
      const res = await send(proxy.url, { method: 'DELETE', path });
      expect(res.status, path).toBe(200);
      expect(proxy.backend.last().url).toBe(path.slice(4));
    }
  });
});
