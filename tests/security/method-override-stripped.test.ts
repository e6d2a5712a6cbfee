import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

const OVERRIDES = ['X-HTTP-Method-Override', 'X-Method-Override', 'X-HTTP-Method'];

/**
 * OWASP WSTG "HTTP Method Overriding": a GET carrying X-HTTP-Method-Override: DELETE is a DELETE to many
 * frameworks, behind every method-based check in front of them. Gatehouse strips these headers.
 */
describe('method override headers', () => {
  let backend: TestBackend;
  let gh: TestGatehouse;
  beforeAll(async () => {
    backend = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none' }]));
  });
  afterAll(async () => {
    await gh?.close();
    await backend?.close();
  });

  it.each(OVERRIDES)('%s is not forwarded and the method stays what it was', async (name) => {
    for (const method of ['GET', 'POST']) {
      const res = await send(gh.url, { method, path: '/api/users/1', headers: [name, 'DELETE', name.toLowerCase(), 'PUT'], ...(method === 'POST' ? { body: '{}' } : {}) });
      expect(res.status).toBe(200);
      const rec = backend.last();
      expect(rec.method).toBe(method);
      for (const h of OVERRIDES) expect(rec.headers.has(h.toLowerCase()), h).toBe(false);
    }
  });
});
