import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { bodyOf, startRecordingBackend } from '../helpers/recording-backend.ts';

/**
 * security-cases 106 (SCH-PROTO): `__proto__` and `constructor.prototype` in a checked body or query. A strict schema
 * refuses them (400); a permissive one forwards them as inert data, byte for byte. Either way nothing in the
 * Gatehouse process changes: `({}).isAdmin` stays undefined (Gatehouse runs in this test's process).
 */
describe('prototype pollution through a checked body or query', () => {
  const proxy = useBareProxy({
    backend: () => startRecordingBackend({ noncePattern: /n=[a-z0-9]+/ }),
    config: `schemas:
  - method: POST
    path: /strict
    body: { type: object, properties: { name: { type: string } }, additionalProperties: false }
    query: { type: object, properties: { n: { type: string } }, additionalProperties: false }
  - method: POST
    path: /open
    body: { type: object }
    query: { type: object }
`,
  });
  const polluted = () =>
    (({}) as Record<string, unknown>)['isAdmin'] !== undefined || (Object.prototype as Record<string, unknown>)['isAdmin'] !== undefined;

  const BODIES = [
    '{"__proto__":{"isAdmin":true}}',
    '{"constructor":{"prototype":{"isAdmin":true}}}',
    '{"name":"x","__proto__":{"isAdmin":true}}',
  ];

  it.each(BODIES)('a strict schema refuses %s: 400 validation_failed, not forwarded', async (body) => {
    const before = proxy.backend.records.length;
    const res = await send(proxy.url, { method: 'POST', path: '/api/strict', headers: ['Content-Type', 'application/json'], body });
    expectError(res, 400, 'validation_failed');
    expect(proxy.backend.records.length).toBe(before);
    expect(polluted()).toBe(false);
  });

  it.each(BODIES)('a permissive schema forwards %s as inert data, byte for byte', async (body) => {
    const res = await send(proxy.url, { method: 'POST', path: '/api/open?n=p1', headers: ['Content-Type', 'application/json'], body });
    expect(res.status).toBe(200);
    expect(bodyOf(proxy.backend.records.at(-1)!).toString()).toBe(body);
    expect(polluted()).toBe(false);
  });

  it.each(['?__proto__[isAdmin]=1', '?__proto__=x', '?constructor[prototype][isAdmin]=1', '?constructor.prototype.isAdmin=1'])(
    'the query %s: refused by a strict schema, forwarded unchanged by a permissive one',
    async (query) => {
      const before = proxy.backend.records.length;
      const res = await send(proxy.url, {
        method: 'POST',
        path: `/api/strict${query}`,
        headers: ['Content-Type', 'application/json'],
        body: '{}',
      });
      expectError(res, 400, 'validation_failed');
      expect(proxy.backend.records.length).toBe(before);
      const open = await send(proxy.url, {
        method: 'POST',
        path: `/api/open${query}`,
        headers: ['Content-Type', 'application/json'],
        body: '{}',
      });
      expect(open.status).toBe(200);
      expect(proxy.backend.records.at(-1)!.url).toBe(`/open${query}`);
      expect(polluted()).toBe(false);
    },
  );

  it('the route options are unchanged afterwards: /strict still refuses what it refused', async () => {
    const res = await send(proxy.url, {
      method: 'POST',
      path: '/api/strict',
      headers: ['Content-Type', 'application/json'],
      body: '{"isAdmin":true}',
    });
    expectError(res, 400, 'validation_failed');
  });

  it('afterwards, nothing in this process was polluted', () => {
    expect(polluted()).toBe(false);
  });
});
