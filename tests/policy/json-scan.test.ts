import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJson, type JsonScanFailure, type JsonScanLimits } from '../../src/policy/json-scan.ts';

/** The verdict alone: undefined when the text is accepted. */
function scanJson(text: string, limits: JsonScanLimits): JsonScanFailure | undefined {
  const r = parseJson(text, limits);
  return r.ok ? undefined : r.failure;
}

/**
 * parseJson reads every checked body. Its verdict is held to JSON.parse's (whatever it accepts, JSON.parse accepts;
 * whatever JSON.parse accepts within the limits and without a repeated key, it accepts), and it must find every
 * repeated key, however the text is spelled. Its value is held to the value the text was written from, not to
 * JSON.parse's: on Node 24 JSON.parse can read an escaped key as another one (nodejs/node#63785), and these very
 * tests, run long enough, teach it the keys that trigger that.
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

/** JSON has no -0: a value as its text says it (JSON.stringify(-0) is "0"). */
function asWritten(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(asWritten);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asWritten(v)]));
  return value;
}

/** fast-check's JSON values, and a text for each with random whitespace (and escapes, where its strings need them). */
const jsonValueAndText = fc.tuple(fc.jsonValue({ maxDepth: 6 }), whitespace, fc.boolean()).map(([value, ws, pretty]) => ({
  value,
  text: pretty ? JSON.stringify(value, null, ws.length > 0 ? ws.length : 1) : `${ws}${JSON.stringify(value)}${ws}`,
}));
const jsonText = jsonValueAndText.map(({ text }) => text);

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
  it('accepts generated JSON, with the value it was written from', () => {
    fc.assert(
      fc.property(jsonValueAndText, ({ value, text }) => {
        expect(parseJson(text, WIDE)).toEqual({ ok: true, value: asWritten(value) });
      }),
      { numRuns: 2000 },
    );
  });

  it('reads escaped keys right where JSON.parse, taught by an earlier text, reads another key (nodejs/node#63785)', () => {
    // Each pair: a text that teaches V8 a key, then one whose escaped key V8 then reads as that key.
    const cases: Array<[string, string, string]> = [
      [String.raw`{"x":0,"is_admi\\":0}`, String.raw`{"x":0,"is_admi\u006e":true}`, 'is_admin'],
      [String.raw`{"h":[],"\\":0}`, String.raw`{"h":1,"\"":2}`, '"'],
      [String.raw`{"\r":[],"\\":0}`, String.raw`{"\r":"v","\n":"w"}`, '\n'],
    ];
    for (const [teach, text, key] of cases) {
      JSON.parse(teach);
      const r = parseJson(text, LIMITS);
      expect(r.ok, text).toBe(true);
      expect(Object.keys((r as { value: object }).value), text).toContain(key);
    }
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

  it('finds a repeated key at any depth, and reads the rest exactly, whatever the strings around it hold', () => {
    // Trees written by hand: objects as lists of [key, child] pairs, so a key may repeat anywhere; strings full of
    // what a text scan could mistake for structure (quotes, backslashes, colons, brackets), and of the escaped keys
    // that V8 misreads once taught (nodejs/node#63785).
    const tricky = fc.oneof(key, fc.constantFrom(':', '\\', '\\"', '{"a":1}', '[', '\\\\', '":"', '\r', '\n', 'is_admin', 'is_admi\\'));
    type Tree = { kind: 'leaf'; value: unknown } | { kind: 'array'; items: Tree[] } | { kind: 'object'; pairs: [string, Tree][] };
    const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.oneof(tricky, fc.integer(), fc.constant(null)).map((value) => ({ kind: 'leaf' as const, value })),
        fc.array(tie('tree'), { maxLength: 4 }).map((items) => ({ kind: 'array' as const, items })),
        fc.array(fc.tuple(tricky, tie('tree')), { maxLength: 4 }).map((pairs) => ({ kind: 'object' as const, pairs })),
      ),
    }));
    // Keys spelled with escapes at random: "a" as \u0061, as JSON.stringify writes the rest.
    const write = (t: Tree, escape: boolean): string =>
      t.kind === 'leaf'
        ? JSON.stringify(t.value)
        : t.kind === 'array'
          ? `[${t.items.map((i) => write(i, escape)).join(', ')}]`
          : `{ ${t.pairs.map(([k, v]) => `${escape ? JSON.stringify(k).replace(/a/g, '\\u0061') : JSON.stringify(k)} : ${write(v, escape)}`).join(',')}}`;
    const repeats = (t: Tree): boolean =>
      t.kind === 'array'
        ? t.items.some(repeats)
        : t.kind === 'object' && (new Set(t.pairs.map(([k]) => k)).size !== t.pairs.length || t.pairs.some(([, v]) => repeats(v)));
    const valueOf = (t: Tree): unknown => {
      if (t.kind === 'leaf') return t.value;
      if (t.kind === 'array') return t.items.map(valueOf);
      const o: Record<string, unknown> = {};
      for (const [k, v] of t.pairs)
        Object.defineProperty(o, k, { value: valueOf(v), enumerable: true, writable: true, configurable: true });
      return o;
    };
    fc.assert(
      fc.property(tree, fc.boolean(), (t, escape) => {
        const text = write(t, escape);
        const r = parseJson(text, WIDE);
        if (repeats(t)) expect(r, text).toEqual({ ok: false, failure: 'duplicate_key' });
        else expect(r, text).toEqual({ ok: true, value: valueOf(t) });
      }),
      { numRuns: 5000 },
    );
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
