import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * A key spelled with an escape must be checked as the key the backend reads. V8's JSON.parse (Node 24 to 26;
 * nodejs/node#63785) reads `"is_admi\u006e"` as `is_admi\` once any earlier text in the process had that key, so a
 * schema constraining `is_admin` saw an unknown key and passed `{"is_admin":true}` on to the backend. The attacker
 * needs two requests: the first only teaches the parser the key, and may itself be refused.
 */
describe('an escaped key in a checked body', () => {
  const proxy = useBareProxy({
    config:
      'schemas:\n  - method: POST\n    path: /profile\n    body: { type: object, properties: { is_admin: { const: false }, name: { type: string } } }\n',
  });
  const post = (body: string) =>
    send(proxy.url, { method: 'POST', path: '/api/profile', headers: ['Content-Type', 'application/json'], body });

  it('is checked as the backend reads it, whatever was parsed before: 400 validation_failed, not forwarded', async () => {
    // Teach: the key `is_admi\` (a backslash at the end), after the same first key.
    expect((await post(String.raw`{"name":"a","is_admi\\":0}`)).status).toBe(200);
    const before = proxy.backend.requests.length;
    const res = await post(String.raw`{"name":"a","is_admi\u006e":true}`);
    expectError(res, 400, 'validation_failed');
    expect(res.json()['details']).toEqual([{ in: 'body', path: '/is_admin', message: 'must be equal to constant' }]);
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('an escaped key that means what it says is forwarded', async () => {
    const body = String.raw`{"name":"Jos\u00e9","is_admi\u006e":false}`;
    const res = await post(body);
    expect(res.status).toBe(200);
    expect(proxy.backend.last().bodySize).toBe(Buffer.byteLength(body));
  });
});
