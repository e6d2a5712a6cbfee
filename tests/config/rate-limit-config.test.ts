import { describe, expect, it } from 'vitest';
import { CONFIG_SOURCE as SOURCE, configProblems, loadTestConfig } from '../helpers/config-problems.ts';
import { compilePolicy } from '../../src/policy/runtime.ts';

const load = (yaml: string) => loadTestConfig(yaml);
const problems = (yaml: string): readonly string[] => configProblems(() => load(yaml));
const mapping = (extra: string) => `mappings:\n  - frontendHost: app.example.com\n    backend: http://orders:8080\n${extra}`;

describe('rate limit configuration', () => {
  it('defaults /auth to 60 per minute per client and /api to none', () => {
    const rt = compilePolicy(load(mapping('')));
    expect(rt.authLimit).toMatchObject({ id: 'auth', requests: 60, windowSeconds: 60, burst: 0, onStoreError: 'local' });
    expect(rt.routes.routes[0]?.rateLimit).toBeUndefined();
  });

  it('applies rateLimits.api to mappings without their own; a mapping overrides it or switches it off with false', () => {
    const rt = compilePolicy(
      load(
        'rateLimits:\n  auth: false\n  api: { requests: 100, burst: 20 }\n' +
          'mappings:\n' +
          '  - { frontendHost: a.example.com, backend: "http://a:1" }\n' +
          '  - { frontendHost: b.example.com, backend: "http://b:1", rateLimit: { requests: 5, windowSeconds: 1 } }\n' +
          '  - { frontendHost: c.example.com, backend: "http://c:1", rateLimit: false }\n',
      ),
    );
    expect(rt.authLimit).toBeUndefined();
    const [a, b, c] = rt.routes.routes;
    expect(a?.rateLimit).toMatchObject({
      id: 'api',
      requests: 100,
      windowSeconds: 60,
      burst: 20,
      onStoreError: 'throw',
      policyField: '"api";q=100;w=60',
    });
    expect(b?.rateLimit).toMatchObject({ id: 'mapping-1', requests: 5, windowSeconds: 1, burst: 0, policyField: '"mapping-1";q=5;w=1' });
    expect(c?.rateLimit).toBeUndefined();
  });

  it.each([
    [
      'rateLimits:\n  api: true\nmappings: []\n',
      `${SOURCE} /rateLimits/api: true is not a limit; write { requests: N, windowSeconds: S } or false for none`,
    ],
    [
      mapping('    rateLimit: true\n'),
      `${SOURCE} /mappings/0/rateLimit: true is not a limit; write { requests: N, windowSeconds: S } or false for none`,
    ],
    [mapping('    rateLimit: { windowSeconds: 10 }\n'), `${SOURCE} /mappings/0/rateLimit/requests: is required`],
    [mapping('    rateLimit: { requests: 0 }\n'), `${SOURCE} /mappings/0/rateLimit/requests: must be >= 1 (got 0)`],
    [
      mapping('    rateLimit: { requests: 10, window: 60 }\n'),
      `${SOURCE} /mappings/0/rateLimit/window: is not a known field; did you mean \`windowSeconds\`?`,
    ],
    [
      'rateLimits:\n  auth: { requests: 10, windowSeconds: 1.5 }\nmappings: []\n',
      `${SOURCE} /rateLimits/auth/windowSeconds: must be integer (got 1.5)`,
    ],
    ['rateLimits:\n  web: { requests: 10 }\nmappings: []\n', `${SOURCE} /rateLimits/web: is not a known field (known: auth, api)`],
  ])('rejects the whole configuration, naming the field: %s', (yaml, message) => {
    expect(problems(yaml)).toEqual([message]);
  });
});
