import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError, expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

const OVERRIDES = ['X-HTTP-Method-Override', 'X-Method-Override', 'X-HTTP-Method'];

/**
 * METHOD-OVERRIDE (catalogue #65; OWASP WSTG "Testing for HTTP Method Overriding") against route rules: a rule
 * that refuses DELETE must not be passed by a POST (or a GET) that asks the backend to treat it as a DELETE.
 * Override headers are stripped before forwarding; an override in the query is refused where rules decide.
 */
describe('method overrides cannot get past a route rule', () => {
  const proxy = useBareProxy({
    routes: (url) => [
      {
        frontendHost: '*',
        pathPrefix: '/items',
        backend: url,
        auth: 'none',
        rules: [{ match: { path: '/items/*' }, methods: ['GET', 'POST'] }],
      },
      { frontendHost: '*', pathPrefix: '/plain', backend: url, auth: 'none' },
    ],
  });
  const reached = () => proxy.backend.requests.length;

  it('DELETE itself is 405 with Allow', async () => {
    const res = await send(proxy.url, { method: 'DELETE', path: '/api/items/1' });
    expectError(res, 405, 'method_not_allowed');
    expect(res.headers['allow']).toBe('GET, POST, HEAD');
  });

  it.each(OVERRIDES)('%s: DELETE reaches the backend as the allowed method, without the header', async (name) => {
    for (const method of ['GET', 'POST']) {
      const res = await send(proxy.url, {
        method,
        path: '/api/items/1',
        headers: [name, 'DELETE', name.toUpperCase(), 'DELETE'],
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      expect(res.status).toBe(200);
      const rec = proxy.backend.last();
      expect(rec.method).toBe(method);
      for (const h of OVERRIDES) expect(rec.headers.has(h.toLowerCase()), h).toBe(false);
    }
  });

  it.each([
    '?_method=DELETE',
    '?a=1&_method=delete',
    '?_METHOD=DELETE',
    '?%5Fmethod=DELETE',
    '?x=1&%5fmethod',
    '?_method[]=DELETE',
    '?_method%5B%5D=DELETE',
    '?x=1;_method=DELETE',
  ])('a query override (%s) on a mapping with rules is refused, never forwarded', async (query) => {
    await expectErrorUnforwarded(
      reached,
      () => send(proxy.url, { method: 'POST', path: `/api/items/1${query}`, body: '{}' }),
      400,
      'bad_request',
    );
  });

  it('look-alike parameters pass, and mappings without rules are left alone', async () => {
    for (const path of ['/api/items/1?my_method=x', '/api/items/1?_methods=x', '/api/plain/1?_method=DELETE']) {
      const res = await send(proxy.url, { path });
      expect(res.status, path).toBe(200);
      expect(proxy.backend.last().url).toBe(path.slice(4));
    }
  });
});
