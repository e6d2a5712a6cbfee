import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * security-cases 111 (SCH-DEPTH): `[[[[…]]]]` 100,000 deep and `{"a":{"a":…}}` 10,000 deep, within the byte limit. The
 * nesting is refused by an iterative scan before JSON.parse or ajv runs: 400 invalid_json, fast, and Gatehouse carries on.
 */
describe('hostile nesting in a checked body', () => {
  const proxy = useBareProxy({
    config: 'schemas:\n  - method: POST\n    path: /deep\n    body: { type: [object, array] }\n',
  });
  const post = (body: string) =>
    send(proxy.url, { method: 'POST', path: '/api/deep', headers: ['Content-Type', 'application/json'], body });

  it.each([
    ['arrays 100,000 deep', '['.repeat(100_000) + ']'.repeat(100_000)],
    ['objects 10,000 deep', '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)],
    ['arrays 100,000 deep, never closed', '['.repeat(100_000)],
  ])('%s → 400 invalid_json (depth), no crash', async (_label, body) => {
    const before = proxy.backend.requests.length;
    const started = performance.now();
    const res = await post(body);
    expectError(res, 400, 'invalid_json');
    expect(res.json()['reason']).toBe('depth');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('10,001 keys → 400 invalid_json (keys); 64 levels pass', async () => {
    const many = `{${Array.from({ length: 10_001 }, (_, i) => `"k${i}":0`).join(',')}}`;
    const res = await post(many);
    expectError(res, 400, 'invalid_json');
    expect(res.json()['reason']).toBe('keys');
    expect((await post('['.repeat(64) + ']'.repeat(64))).status).toBe(200);
  });
});
