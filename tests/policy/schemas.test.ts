import { describe, expect, it } from 'vitest';
import type { GatehouseError } from '../../src/errors.ts';
import { backtrackingRisk, checkBodyMediaType, parseQuery } from '../../src/policy/schemas.ts';

describe('backtrackingRisk (the pattern lint for config.yml schemas)', () => {
  it.each(['^[a-z]+$', '^\\d{3}-\\d{4}$', '^(?:ab)?c*$', '^[()|*+]+$', '(?<year>\\d{4})-(?=\\d)', '^a+b+$', '\\(a+\\)+', '(ab){1}'])(
    'lets %s through',
    (pattern) => expect(backtrackingRisk(pattern)).toBeUndefined(),
  );

  it.each(['^(a|a)*$', '(a+)+$', '(a*)*', '((ab)*c)+', '(?:a|b){2,}', '(x+x+)+y', '(a?){10,20}', '(a)\\1', '\\k<n>'])(
    'refuses %s',
    (pattern) => expect(backtrackingRisk(pattern)).toBeDefined(),
  );

  it('refuses a very long pattern', () => expect(backtrackingRisk('a'.repeat(1001))).toMatch(/longer than/));
});

describe('parseQuery', () => {
  it('repeated keys become arrays; + and %-escapes are decoded; a key without = has an empty value', () => {
    expect({ ...parseQuery('?a=1&a=2&a=3&b=x+y%21&c&&d=') }).toEqual({ a: ['1', '2', '3'], b: 'x y!', c: '', d: '' });
  });

  it('builds an object with no prototype: __proto__ and constructor are plain keys, nothing is polluted', () => {
    const q = parseQuery('?__proto__=1&__proto__[isAdmin]=1&constructor[prototype][isAdmin]=1&toString=x')!;
    expect(Object.getPrototypeOf(q)).toBeNull();
    expect(Object.keys(q)).toEqual(['__proto__', '__proto__[isAdmin]', 'constructor[prototype][isAdmin]', 'toString']);
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
  });

  it('a malformed %-escape is undefined', () => expect(parseQuery('?a=%zz')).toBeUndefined());
});

describe('checkBodyMediaType', () => {
  const refused = (types: string[], encodings: string[] = []) => {
    try {
      checkBodyMediaType(types, encodings);
    } catch (err) {
      return (err as GatehouseError).code;
    }
    return 'accepted';
  };
  it.each([
    [['application/json'], [], 'accepted'],
    [['application/json;charset=utf-8'], [], 'accepted'],
    [['APPLICATION/JSON ; CHARSET="utf-8"'], ['identity'], 'accepted'],
    [['application/json; charset=latin1'], [], 'unsupported_media_type'],
    [['application/problem+json'], [], 'unsupported_media_type'],
    [['application/json', 'application/json'], [], 'unsupported_media_type'],
    [[], [], 'unsupported_media_type'],
    [['application/json'], ['gzip'], 'unsupported_media_type'],
    [['application/json'], ['identity, br'], 'unsupported_media_type'],
  ])('%j with Content-Encoding %j: %s', (types, encodings, outcome) => expect(refused(types, encodings)).toBe(outcome));
});
