import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanJson } from '../../src/policy/json-scan.ts';

/**
 * The scanner runs before JSON.parse on every checked body, so it is held to JSON.parse: whatever it accepts,
 * JSON.parse accepts (and the value validated is JSON.parse's, duplicate keys being refused); whatever JSON.parse
 * accepts within the limits and without a repeated key, it accepts.
 */
const LIMITS = { maxDepth: 64, maxKeys: 10_000 };
const WIDE = { maxDepth: 1_000_000, maxKeys: 1_000_000 };

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const whitespace = fc.constantFrom('', ' ', '\n', '\t', '\r\n', '  ');
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'a', 'é', '\u0000', '"'));

/** Generated JSON text, with random whitespace and escapes, from fast-check's own JSON values. */
const jsonText = fc
  .tuple(fc.jsonValue({ maxDepth: 6 }), whitespace, fc.boolean())
  .map(([value, ws, pretty]) =>
    pretty ? JSON.stringify(value, null, ws.length > 0 ? ws.length : 1) : `${ws}${JSON.stringify(value)}${ws}`,
  );

/** Near-JSON: valid text with one edit (a character inserted, removed or replaced by a JSON-significant one). */
const nearJson = fc
  .tuple(
    jsonText,
    fc.nat(),
    fc.constantFrom('insert', 'delete', 'replace'),
    fc.constantFrom(...'{}[],:"\\ -+.eE0123456789tfnul\u0000\u001f\ufeffx'),
  )
  .map(([text, at, op, ch]) => {
    const i = text.length === 0 ? 0 : at % text.length;
    if (op === 'insert') return text.slice(0, i) + ch + text.slice(i);
    if (op === 'delete') return text.slice(0, i) + text.slice(i + 1);
    return text.slice(0, i) + ch + text.slice(i + 1);
  });

/** Objects written by hand so keys can repeat (JSON.stringify never repeats one). */
const withKeys = fc
  .array(fc.tuple(key, fc.jsonValue({ maxDepth: 2 })), { maxLength: 6 })
  .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);

describe('scanJson against JSON.parse', () => {
  it('accepts generated JSON, and JSON.parse agrees', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        expect(scanJson(text, WIDE)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('on near-JSON: whatever it accepts, JSON.parse accepts; what JSON.parse accepts, it accepts unless a key repeats', () => {
    fc.assert(
      fc.property(fc.oneof(nearJson, withKeys), (text) => {
        const verdict = scanJson(text, WIDE);
        if (verdict === undefined) expect(parses(text), text).toBe(true);
        if (parses(text)) expect(verdict === undefined || verdict === 'duplicate_key', text).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses exactly the objects whose keys repeat (after escapes are decoded)', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 6 }), (keys) => {
        const text = `{${keys.map((k, i) => `${JSON.stringify(k).replace(/a/g, '\\u0061')}:${i}`).join(',')}}`;
        const repeats = new Set(keys).size !== keys.length;
        expect(scanJson(text, WIDE)).toBe(repeats ? 'duplicate_key' : undefined);
        if (!repeats) expect(Object.keys(JSON.parse(text) as object)).toHaveLength(keys.length);
      }),
    );
    expect(scanJson('{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}', WIDE)).toBeUndefined();
  });

  it('bounds depth and keys without recursion: 100,000 deep is refused at once', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const started = performance.now();
    expect(scanJson(deep, LIMITS)).toBe('depth');
    expect(scanJson(`${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`, LIMITS)).toBe('depth');
    expect(scanJson(deep, WIDE)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(500);
    expect(scanJson('['.repeat(64) + ']'.repeat(64), LIMITS)).toBeUndefined();
    expect(scanJson('['.repeat(65) + ']'.repeat(65), LIMITS)).toBe('depth');
    const many = `{${Array.from({ length: 10_001 }, (_, i) => `"k${i}":0`).join(',')}}`;
    expect(scanJson(many, LIMITS)).toBe('keys');
    expect(scanJson(many, WIDE)).toBeUndefined();
  });

  it.each([
    '',
    ' ',
    '01',
    '1.',
    '.5',
    '+1',
    '-',
    '1e',
    'tru',
    'nul',
    '"\t"',
    '"\\x"',
    '"\\u12g4"',
    '[1,]',
    '{"a"}',
    '{"a":1,}',
    '{,}',
    '[1 2]',
    '1 2',
    '\ufeff1',
    'NaN',
    '"abc',
  ])('refuses %j like JSON.parse', (text) => {
    expect(parses(text)).toBe(false);
    expect(scanJson(text, WIDE)).toBe('syntax');
  });
});
