import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

const OVERRIDES = ['X-HTTP-Method-Override', 'X-Method-Override', 'X-HTTP-Method'];

/**
 * OWASP WSTG "HTTP Method Overriding": a GET carrying X-HTTP-Method-Override: DELETE is a DELETE to many
 * frameworks, behind every method-based check in front of them. Gatehouse strips these headers.
 */
describe('method override headers', () => {
  const proxy = useBareProxy();

  it.each(OVERRIDES)('%s is not forwarded and the method stays what it was', async (name) => {
    for (const method of ['GET', 'POST']) {
      const res = await send(proxy.url, {
        method,
        path: '/api/users/1',
        headers: [name, 'DELETE', name.toLowerCase(), 'PUT'],
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      expect(res.status).toBe(200);
      const rec = proxy.backend.last();
      expect(rec.method).toBe(method);
      for (const h of OVERRIDES) expect(rec.headers.has(h.toLowerCase()), h).toBe(false);
    }
  });
});
