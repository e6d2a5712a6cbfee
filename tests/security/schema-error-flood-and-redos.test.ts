import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError, GatehouseError } from '../../src/errors.ts';
import { checkBody } from '../../src/policy/schemas.ts';
import { compilePolicy } from '../../src/policy/runtime.ts';

/**
 * security-cases 112 (SCH-AJV-OPTS): a body that would produce 100,000 errors, `$data`, and the ReDoS pattern
 * `^(a|a)*$`. ajv runs with allErrors off (one error, found at the first bad item), without $data, and a pattern
 * that can backtrack never compiles. Each case is refused through the proxy; the check itself (checkBody, what the
 * proxy runs on the buffered bytes) is timed directly, best of five, because round trips on a loaded test machine
 * measure the machine.
 */
describe('ajv options that keep validation cheap', () => {
  const proxy = useBareProxy({
    config: `schemas:
  - method: POST
    path: /numbers
    body: { type: array, items: { type: number } }
  - method: POST
    path: /letters
    body: { type: object, properties: { value: { type: string, pattern: "^a*$", maxLength: 100000 } } }
`,
  });
  const post = (path: string, body: string) =>
    send(proxy.url, { method: 'POST', path, headers: ['Content-Type', 'application/json'], body });
  const timed = async (path: string, body: string) => {
    const res = await post(path, body);
    const check = proxy.gh.app.runtime().schemas.find('POST', path.slice('/api'.length));
    let ms = Infinity;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect(() => checkBody(check!, Buffer.from(body))).toThrow(GatehouseError);
      ms = Math.min(ms, performance.now() - started);
    }
    // allErrors off: ajv stopped at the first error instead of collecting one per item.
    expect(check!.body!.errors).toHaveLength(1);
    // The catalogue's 50 ms, or on a machine too busy for that, five times what JSON.parse alone takes on the same
    // text right now (a check collecting 100,000 errors, or backtracking, would be far past either).
    let parseMs = Infinity;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      JSON.parse(body);
      parseMs = Math.min(parseMs, performance.now() - started);
    }
    return { res, ms, bound: Math.max(50, 5 * parseMs) };
  };

  it('a 100,000-item array of wrong types: one detail, answered fast', async () => {
    const { res, ms, bound } = await timed('/api/numbers', JSON.stringify(Array.from({ length: 100_000 }, () => 'x')));
    expectError(res, 400, 'validation_failed');
    expect(res.json()['details']).toEqual([{ in: 'body', path: '/0', message: 'must be number' }]);
    expect(ms).toBeLessThan(bound);
  });

  it('"aaaa…!" against the linted, linear equivalent of ^(a|a)*$: answered fast', async () => {
    const { res, ms, bound } = await timed('/api/letters', JSON.stringify({ value: `${'a'.repeat(32)}!` }));
    expectError(res, 400, 'validation_failed');
    expect(ms).toBeLessThan(bound);
    const long = await timed('/api/letters', JSON.stringify({ value: `${'a'.repeat(50_000)}!` }));
    expectError(long.res, 400, 'validation_failed');
    expect(long.ms).toBeLessThan(long.bound);
  });

  const refusal = (body: string) => {
    const env = {
      NODE_ENV: 'test',
      APP_BASE_URL: 'https://app.example.com',
      OIDC_ISSUER: 'https://idp.example.com',
      OIDC_CLIENT_ID: 'x',
      GATEHOUSE_CONFIG: '/c/config.yml',
    };
    const started = performance.now();
    try {
      compilePolicy(loadConfig(env, { readFile: () => `mappings: []\nschemas:\n  - method: POST\n    path: /x\n    body: ${body}\n` }));
    } catch (err) {
      expect(performance.now() - started).toBeLessThan(5000);
      return err instanceof ConfigError ? err.problems.join('\n') : String(err);
    }
    return 'accepted';
  };

  it('^(a|a)*$ and (a+)+$ never compile: the configuration is refused', () => {
    expect(refusal('{ type: string, pattern: "^(a|a)*$" }')).toMatch(/\/schemas\/0\/body: pattern .* repeats a group/);
    expect(refusal('{ type: object, properties: { v: { type: string, pattern: "(a+)+$" } } }')).toMatch(/repeats a group/);
  });

  it('$data is not enabled: a schema using it is refused', () => {
    expect(refusal('{ type: object, properties: { a: { type: string, pattern: { $data: "1/p" } } } }')).toMatch(/\/schemas\/0\/body: /);
  });
});
