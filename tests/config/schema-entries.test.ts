import { describe, expect, it } from 'vitest';
import { CONFIG_ENV as ENV, CONFIG_SOURCE as SOURCE, configProblems, loadTestConfig } from '../helpers/config-problems.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { compilePolicy } from '../../src/policy/runtime.ts';

/**
 * config.yml `schemas`: `$ref`s read beside config.yml, and every schema compiled when the configuration loads; one bad
 * entry refuses the whole configuration, naming the entry and the part.
 */
const MAPPINGS = 'mappings:\n  - frontendHost: "*"\n    backend: http://orders:8080\n';

function load(yaml: string, files: Record<string, string> = {}): Config {
  const config = loadTestConfig(MAPPINGS + yaml, { files });
  compilePolicy(config);
  return config;
}

const problems = (yaml: string, files: Record<string, string> = {}): readonly string[] => configProblems(() => load(yaml, files));

const entry = (part: string) => `schemas:\n  - method: POST\n    path: /items\n    body: ${part}\n`;

describe('config.yml schemas', () => {
  it('loads inline and $ref schemas, with maxBodyBytes defaulting to 1 MiB', () => {
    const config = load(
      'schemas:\n  - method: GET\n    path: /items\n    query: { $ref: "schemas/items-query.json" }\n  - methods: [POST]\n    path: /items\n    body: { type: object }\n',
      { '/etc/gatehouse/schemas/items-query.json': '{"type":"object","properties":{"limit":{"type":"integer"}}}' },
    );
    expect(config.routing.schemas?.[0]?.query).toEqual({ type: 'object', properties: { limit: { type: 'integer' } } });
    expect(config.routing.schemas?.[1]?.maxBodyBytes).toBe(1024 * 1024);
    const rt = compilePolicy(config);
    expect(rt.schemas.find('GET', '/items')?.index).toBe(0);
    expect(rt.schemas.find('HEAD', '/items')?.index).toBe(0);
    expect(rt.schemas.find('POST', '/ITEMS/')?.index).toBe(1);
    expect(rt.schemas.find('PUT', '/items')).toBeUndefined();
  });

  it.each([
    [
      '{ type: object, properties: { a: { type: strin } } }',
      /\/schemas\/0\/body: schema is invalid: data\/properties\/a\/type must be equal to one of the allowed values/,
    ],
    ['{ type: object, propertys: {} }', /\/schemas\/0\/body: strict mode: unknown keyword: "propertys"/],
    ['{ type: string, format: email }', /\/schemas\/0\/body: unknown format "email"/],
    [
      '{ type: string, pattern: "^(a|a)*$" }',
      /\/schemas\/0\/body: pattern "\^\(a\|a\)\*\$" repeats a group that holds a quantifier or an alternation/,
    ],
    ['{ type: string, pattern: "(a+)+$" }', /\/schemas\/0\/body: pattern "\(a\+\)\+\$" repeats a group/],
    ['{ type: object, patternProperties: { "^(x*)*$": { type: string } } }', /\/schemas\/0\/body: pattern .* repeats a group/],
    ['{ type: string, pattern: "(a)\\\\1" }', /backreference/],
    ['{ $ref: "#/definitions/missing" }', /\/schemas\/0\/body: can't resolve reference #\/definitions\/missing/],
    ['{ type: object, properties: { a: { $data: "1/b" } } }', /\/schemas\/0\/body: /],
  ])('%s is refused, naming the entry', (schema, message) => {
    const list = problems(entry(schema));
    expect(list).toHaveLength(1);
    expect(list[0]).toMatch(/^config\.yml \/schemas\/0\/body: /);
    expect(list[0]).toMatch(message);
  });

  it('every bad entry is listed, and a bad path pattern too', () => {
    const list = problems(
      'schemas:\n  - method: GET\n    path: /a/:b-:c\n  - method: POST\n    path: /x\n    body: { type: nope }\n    query: { type: object, additionalProperties: { pattern: "(.*)*" } }\n',
    );
    expect(list).toHaveLength(3);
    expect(list[0]).toMatch(/^config\.yml \/schemas\/0\/path: /);
    expect(list[1]).toMatch(/^config\.yml \/schemas\/1\/body: /);
    expect(list[2]).toMatch(/^config\.yml \/schemas\/1\/query: /);
  });

  it('method and methods: exactly one of them', () => {
    expect(problems('schemas:\n  - path: /x\n')).toEqual([
      `${SOURCE} /schemas/0: give exactly one of method (e.g. POST) and methods (e.g. [PUT, PATCH])`,
    ]);
    expect(problems('schemas:\n  - method: GET\n    methods: [GET]\n    path: /x\n')).toHaveLength(1);
  });

  it.each([
    ['"/etc/passwd.json"', 'must name a .json file by a path relative to config.yml'],
    ['"../secrets/x.json"', "must stay inside config.yml's folder"],
    ['"schemas/x.yaml"', 'must name a .json file by a path relative to config.yml'],
    ['"schemas/missing.json"', 'cannot be read (ENOENT)'],
    ['"schemas/broken.json"', 'is not valid JSON'],
    ['"schemas/array.json"', 'must hold a JSON object (a schema)'],
  ])('$ref %s: %s', (ref, why) => {
    const files = { '/etc/gatehouse/schemas/broken.json': '{"type": root:x:0:0', '/etc/gatehouse/schemas/array.json': '[]' };
    const list = problems(entry(`{ $ref: ${ref} }`), files);
    expect(list).toEqual([`${SOURCE} /schemas/0/body: $ref ${ref} ${why}`]);
    // The file's text is never quoted back.
    expect(list.join('')).not.toContain('root:x');
  });

  it('a $ref to a file with other keywords beside it is refused', () => {
    expect(problems(entry('{ $ref: "a.json", type: object }'))[0]).toMatch(/a \$ref to a file stands alone/);
  });

  it('two entries may share an $id', () => {
    const config = load(
      entry('{ $id: "https://x/s", type: object }') + '  - method: PUT\n    path: /items\n    body: { $id: "https://x/s", type: array }\n',
    );
    expect(compilePolicy(config).schemas.size).toBe(2);
  });

  it('strictSchemas is a mapping setting, off by default', () => {
    const config = loadConfig(ENV, {
      readFile: () =>
        'mappings:\n  - frontendHost: a.example\n    backend: http://a:1\n    strictSchemas: true\n  - frontendHost: b.example\n    backend: http://b:1\n',
    });
    expect(compilePolicy(config).routes.routes.map((r) => r.strictSchemas)).toEqual([true, false]);
  });
});
