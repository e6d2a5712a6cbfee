import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { compilePolicy } from '../../src/policy/runtime.ts';

/**
 * security-cases 119 (ADM-UNTRUSTED-SCHEMA): a schema nested 10,000 deep, a 5 MB schema, one with `"pattern":"(a+)+$"`.
 * Each is refused with a config error naming the entry, in bounded time, before ajv compiles anything that large or
 * deep (AJV security, "untrusted schemas": compiling can overflow the stack or be slow); the process carries on.
 */
const ENV = {
  NODE_ENV: 'test',
  APP_BASE_URL: 'https://app.example.com',
  OIDC_ISSUER: 'https://idp.example.com',
  OIDC_CLIENT_ID: 'x',
  GATEHOUSE_CONFIG: '/srv/gh/config.yml',
};

function outcome(yaml: string, files: Record<string, string> = {}): { problems: readonly string[]; ms: number } {
  const started = performance.now();
  try {
    compilePolicy(loadConfig(ENV, { readFile: (p) => (p === ENV.GATEHOUSE_CONFIG ? `mappings: []\n${yaml}` : (files[p] ?? '')) }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { problems: err.problems, ms: performance.now() - started };
  }
  throw new Error('the configuration was accepted');
}

const byRef = 'schemas:\n  - method: POST\n    path: /x\n    body: { $ref: "s.json" }\n';
const nested = (depth: number) => '{"type":"object","properties":{"a":'.repeat(depth) + '{}' + '}}'.repeat(depth);

describe('schemas from config.yml are bounded before they are compiled', () => {
  it('a schema file nested 10,000 deep', () => {
    const { problems, ms } = outcome(byRef, { '/srv/gh/s.json': nested(10_000) });
    expect(problems).toEqual(['GATEHOUSE_CONFIG /srv/gh/config.yml /schemas/0/body: $ref "s.json" is nested deeper than 64 levels']);
    expect(ms).toBeLessThan(2000);
  });

  it('an inline schema nested 200 deep; 10,000 deep the YAML parser itself refuses', () => {
    const { problems } = outcome(`schemas:\n  - method: POST\n    path: /x\n    body: ${nested(200)}\n`);
    expect(problems).toEqual(['GATEHOUSE_CONFIG /srv/gh/config.yml /schemas/0/body: is nested deeper than 64 levels']);
    const deep = outcome(`schemas:\n  - method: POST\n    path: /x\n    body: ${nested(10_000)}\n`);
    expect(deep.problems[0]).toMatch(/YAML error/);
  });

  it('a 5 MB schema file is not even parsed', () => {
    const huge = JSON.stringify({
      type: 'object',
      properties: Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [`p${i}`, { type: 'string' }])),
    });
    expect(huge.length).toBeGreaterThan(5_000_000);
    const { problems, ms } = outcome(byRef, { '/srv/gh/s.json': huge });
    expect(problems).toEqual(['GATEHOUSE_CONFIG /srv/gh/config.yml /schemas/0/body: $ref "s.json" is larger than 1048576 bytes']);
    expect(ms).toBeLessThan(2000);
  });

  it('an inline schema over 1 MiB', () => {
    const { problems } = outcome(
      `schemas:\n  - method: POST\n    path: /x\n    body: { type: string, description: "${'d'.repeat(1024 * 1024)}" }\n`,
    );
    expect(problems).toEqual(['GATEHOUSE_CONFIG /srv/gh/config.yml /schemas/0/body: is larger than 1048576 bytes']);
  });

  it('"pattern": "(a+)+$" is refused by the lint, at load', () => {
    const { problems } = outcome(byRef, { '/srv/gh/s.json': '{"type":"object","properties":{"v":{"type":"string","pattern":"(a+)+$"}}}' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^config\.yml \/schemas\/0\/body: pattern "\(a\+\)\+\$" repeats a group/);
  });

  it('a schema at the bounds compiles', () => {
    const yaml = byRef;
    expect(() =>
      compilePolicy(loadConfig(ENV, { readFile: (p) => (p === ENV.GATEHOUSE_CONFIG ? `mappings: []\n${yaml}` : nested(31)) })),
    ).not.toThrow();
  });
});
