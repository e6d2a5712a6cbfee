import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileMethods, compilePathPattern, firstEntry } from '../../src/policy/path-pattern.ts';

describe('path patterns', () => {
  it.each([
    ['/v2/items/:id', '/v2/items/42', true],
    ['/v2/items/:id', '/V2/ITEMS/42', true],
    ['/v2/items/:id', '/v2/items/42/', true],
    ['/v2/items/:id', '/v2/items', false],
    ['/v2/items/:id', '/v2/items/', false],
    ['/v2/items/:id', '/v2/items/42/x', false],
    ['/v2/items', '/v2/items/', true],
    ['/v2/items', '/v2/itemsx', false],
    ['/v2/*', '/v2', true],
    ['/v2/*', '/v2/a/b/c', true],
    ['/v2/*', '/v3/a', false],
    ['/', '/', true],
    ['/', '/a', false],
    ['/*', '/anything/at/all', true],
    // splitApiTarget lets encoded reserved characters through; a backend that decodes reads them as the literal.
    ['/users/me@corp/*', '/users/me%40corp/x', true],
    ['/users/me@corp', '/users/ME%40Corp', true],
    ['/users/me@corp', '/users/me%40corpx', false],
    ['/a!b', '/a%21b/', true],
    ['/a!b', '/a%22b', false],
  ])('%s against %s → %s', (pattern, path, expected) => {
    expect(compilePathPattern(pattern).matches(path)).toBe(expected);
  });

  it.each([
    ['v2/items', 'must start with "/"'],
    ['/v2/*/x', '"*" may only be the last segment'],
    ['/:a-:b', 'is not a parameter'],
    ['/a//b', 'empty and dot segments'],
    ['/a/../b', 'empty and dot segments'],
    ['/a%2fb', 'characters a pattern cannot match'],
  ])('refuses %s', (pattern, message) => {
    expect(() => compilePathPattern(pattern)).toThrow(message);
  });

  it('agrees with a segment-by-segment reference on generated paths', () => {
    const seg = fc.constantFrom('a', 'B', 'items', 'v2', '42');
    fc.assert(
      fc.property(
        fc.array(fc.oneof(seg, fc.constant(':p')), { maxLength: 4 }),
        fc.boolean(),
        fc.array(seg, { maxLength: 5 }),
        fc.boolean(),
        (pat, rest, segs, slash) => {
          const pattern = '/' + [...pat, ...(rest ? ['*'] : [])].join('/');
          const path = '/' + segs.join('/') + (slash && segs.length > 0 ? '/' : '');
          const fits = (i: number): boolean => pat[i] === ':p' || pat[i]?.toLowerCase() === segs[i]?.toLowerCase();
          const expected = (rest ? segs.length >= pat.length : segs.length === pat.length) && pat.every((_, i) => fits(i));
          expect(compilePathPattern(pattern).matches(path)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a rule naming GET covers HEAD; first match wins', () => {
    const entries = [
      { methods: compileMethods(['get']), pattern: compilePathPattern('/a/:x'), value: 1 },
      { methods: undefined, pattern: compilePathPattern('/a/*'), value: 2 },
    ];
    expect(firstEntry(entries, 'HEAD', '/a/1')).toBe(1);
    expect(firstEntry(entries, 'POST', '/a/1')).toBe(2);
    expect(firstEntry(entries, 'POST', '/b')).toBeUndefined();
  });
});
