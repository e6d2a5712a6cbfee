import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * security-cases 108b (SCH-DESYNC): `{"amount":1,"amount":1000000}`. JSON.parse keeps the last value, many backend
 * parsers the first (or either): the schema would check one amount and the backend pay the other. Gatehouse forwards
 * the raw bytes it checked, so a body whose parse can differ is refused: 400 invalid_json, the backend never called.
 */
describe('duplicate keys in a checked body', () => {
  const proxy = useBareProxy({
    config:
      'schemas:\n  - method: POST\n    path: /pay\n    body: { type: object, properties: { amount: { type: integer, maximum: 100 }, to: { type: object } } }\n',
  });

  it.each([
    ['{"amount":1000000,"amount":1}'],
    ['{"amount":1,"amount":1000000}'],
    ['{"amount":1,"\\u0061mount":1000000}'],
    ['{"to":{"id":1,"id":2},"amount":1}'],
  ])('%s → 400 invalid_json (duplicate_key), not forwarded', async (body) => {
    const res = await send(proxy.url, { method: 'POST', path: '/api/pay', headers: ['Content-Type', 'application/json'], body });
    expectError(res, 400, 'invalid_json');
    expect(res.json()['reason']).toBe('duplicate_key');
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('the same key in sibling objects is no duplicate', async () => {
    const res = await send(proxy.url, {
      method: 'POST',
      path: '/api/pay',
      headers: ['Content-Type', 'application/json'],
      body: '{"amount":1,"to":{"amount":2}}',
    });
    expect(res.status).toBe(200);
  });
});
