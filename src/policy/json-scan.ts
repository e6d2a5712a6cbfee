/**
 * Parses a JSON text (RFC 8259) for a schema check, refusing what a check must never be handed: nesting deeper than a
 * limit, more object members than a limit, and an object naming the same key twice. The value returned is exactly
 * what the text says, so what ajv validates is what the backend reads.
 *
 * Duplicate keys are refused because JSON.parse keeps the last one while many backend parsers keep the first: a body
 * checked as `{"amount":1}` could be paid as `{"amount":1000000}` (security-cases 108b). Keys are compared after
 * their escapes are decoded, as both parsers see them ("a" and "\u0061" are the same key).
 *
 * Escaped keys are never left to JSON.parse: V8 (Node 24 to 26 at least; nodejs/node#63785, crbug 521080746) can
 * decode one as a different key, one an earlier parse in the same process taught it. After any text with the key
 * `is_admi\` was parsed, `{"x":0,"is_admi\u006e":true}` parses with the key `is_admi\`: a schema constraining
 * `is_admin` would pass a body the backend reads as `is_admin: true`. Keys without an escape are read right.
 *
 * So there are two ways through, both iterative (hostile nesting costs a loop, no stack):
 * - the usual text, no key escaped: one pass that jumps from string to string (indexOf) and looks only at the bytes
 *   between them, bounding depth and counting members (a ":" outside strings) before anything is built; then
 *   JSON.parse, the judge of syntax; then a count of the value's keys: an object with a repeated key holds fewer
 *   keys than its text has members. For a valid text the count of ":" is exact; for an invalid one it may be
 *   anything, and JSON.parse refuses the text anyway.
 * - a text with an escaped key: read by readStrict() below, which checks the grammar itself, decodes each key as a
 *   lone JSON string (not subject to the bug: no object is being built), and builds the value.
 */
export type JsonScanFailure = 'syntax' | 'depth' | 'keys' | 'duplicate_key';

export interface JsonScanLimits {
  /** Containers (objects and arrays) nested at most this deep; the top-level value is depth 1. */
  readonly maxDepth: number;
  /** Object members in the whole document. */
  readonly maxKeys: number;
}

export type JsonParse = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly failure: JsonScanFailure };

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;

/** measure()'s answer when a key holds an escape: the text goes to readStrict(). */
const ESCAPED_KEY = -1;

/** The member count of `text`, ESCAPED_KEY, or why it is refused before parsing (the usual way, above). */
function measure(text: string, limits: JsonScanLimits): number | JsonScanFailure {
  const n = text.length;
  let depth = 0;
  let members = 0;
  let i = 0;
  // The next backslash at or after i: found once, so telling whether a string holds one costs a comparison.
  let backslash = text.indexOf('\\');
  let lastEscaped = false;
  for (;;) {
    const q = text.indexOf('"', i);
    const end = q === -1 ? n : q;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === LBRACE || c === LBRACKET) {
        if (++depth > limits.maxDepth) return 'depth';
      } else if (c === RBRACE || c === RBRACKET) depth--;
      else if (c === COLON) {
        if (lastEscaped) return ESCAPED_KEY;
        if (++members > limits.maxKeys) return 'keys';
      }
    }
    if (q === -1) return members;
    // The closing quote is the first one not escaped: preceded by an even run of backslashes. Each backslash is
    // counted once, for the quote right after its run, so this stays linear.
    let k = q;
    for (;;) {
      k = text.indexOf('"', k + 1);
      if (k === -1) return 'syntax';
      let b = k - 1;
      while (text.charCodeAt(b) === BACKSLASH) b--;
      if ((k - 1 - b) % 2 === 0) break;
    }
    lastEscaped = backslash !== -1 && backslash < k;
    if (lastEscaped) backslash = text.indexOf('\\', k + 1);
    i = k + 1;
  }
}

/** Own keys in `value` and everything it holds; iterative, so no depth makes it recurse. */
function countKeys(value: unknown): number {
  let keys = 0;
  const pending: object[] = [];
  let next: unknown = value;
  for (;;) {
    if (typeof next === 'object' && next !== null) {
      if (Array.isArray(next)) {
        for (let i = 0; i < next.length; i++) {
          const v: unknown = next[i];
          if (typeof v === 'object' && v !== null) pending.push(v);
        }
      } else {
        const record = next as Record<string, unknown>;
        const own = Object.keys(record);
        keys += own.length;
        for (let i = 0; i < own.length; i++) {
          const v = record[own[i] as string];
          if (typeof v === 'object' && v !== null) pending.push(v);
        }
      }
    }
    if (pending.length === 0) return keys;
    next = pending.pop();
  }
}

/** The value `text` spells when it is one JSON value within the limits and with no repeated key; else why not. */
export function parseJson(text: string, limits: JsonScanLimits): JsonParse {
  const members = measure(text, limits);
  if (members === ESCAPED_KEY) return readStrict(text, limits);
  if (typeof members !== 'number') return { ok: false, failure: members };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, failure: 'syntax' };
  }
  if (countKeys(value) !== members) return { ok: false, failure: 'duplicate_key' };
  return { ok: true, value };
}

// --- the strict reader, for texts with an escaped key ---------------------------------------------------------------

function skipWs(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== LF && c !== CR && c !== TAB) return i;
    i++;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

// A run of characters a string holds as they are: the regex engine skips it faster than a loop of charCodeAt.
const PLAIN = /[^"\\\x00-\x1f]*/y;

/** Index after the string starting at `i` (its opening quote), or -1 when it breaks RFC 8259 §7. */
function scanString(text: string, i: number): number {
  i++;
  for (;;) {
    PLAIN.lastIndex = i;
    PLAIN.test(text);
    i = PLAIN.lastIndex;
    const c = text.charCodeAt(i);
    if (Number.isNaN(c) || c < SPACE) return -1;
    if (c === QUOTE) return i + 1;
    // c is a backslash
    const e = text.charCodeAt(i + 1);
    if (e === 0x75 /* u */) {
      if (!(
        isHex(text.charCodeAt(i + 2)) &&
        isHex(text.charCodeAt(i + 3)) &&
        isHex(text.charCodeAt(i + 4)) &&
        isHex(text.charCodeAt(i + 5))
      ))
        return -1;
      i += 6;
      continue;
    }
    // " \ / b f n r t
    if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return -1;
    i += 2;
  }
}

/** The string between `start` (its opening quote) and `end` (after its closing one), escapes decoded. */
function decodeString(text: string, start: number, end: number): string {
  const inner = text.slice(start + 1, end - 1);
  // A lone JSON string builds no object, so JSON.parse decodes it right; scanString has checked its grammar.
  return inner.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : inner;
}

/** Index after the number starting at `i`, or -1 (RFC 8259 §6: no leading zeros, no "+", digits after "." and "e"). */
function scanNumber(text: string, i: number): number {
  if (text.charCodeAt(i) === MINUS) i++;
  const first = text.charCodeAt(i);
  if (first === 0x30) i++;
  else if (isDigit(first)) while (isDigit(text.charCodeAt(i))) i++;
  else return -1;
  if (text.charCodeAt(i) === 0x2e /* . */) {
    i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i++;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === MINUS) i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i++;
  }
  return i;
}

/** An open container: an array, or an object with the keys it has and the key whose value comes next. */
interface OpenObject {
  readonly object: Record<string, unknown>;
  readonly keys: Set<string>;
  key: string;
}
type Open = { readonly array: unknown[] } | OpenObject;

/** Sets `key` as an own data property, as JSON.parse does (`__proto__` included: a key like any other). */
function define(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

/** The value of `text` read by this module alone, with the same limits and verdicts as the usual way. */
function readStrict(text: string, limits: JsonScanLimits): JsonParse {
  const fail = (failure: JsonScanFailure): JsonParse => ({ ok: false, failure });
  const n = text.length;
  const stack: Open[] = [];
  let members = 0;
  let i = skipWs(text, 0);
  let expectKey = false;
  for (;;) {
    if (expectKey) {
      if (text.charCodeAt(i) !== QUOTE) return fail('syntax');
      const end = scanString(text, i);
      if (end === -1) return fail('syntax');
      const top = stack[stack.length - 1] as OpenObject;
      const key = decodeString(text, i, end);
      if (top.keys.has(key)) return fail('duplicate_key');
      top.keys.add(key);
      top.key = key;
      if (++members > limits.maxKeys) return fail('keys');
      i = skipWs(text, end);
      if (text.charCodeAt(i) !== COLON) return fail('syntax');
      i = skipWs(text, i + 1);
      expectKey = false;
    }
    // A value starts at i.
    let value: unknown;
    const c = text.charCodeAt(i);
    if (c === LBRACE || c === LBRACKET) {
      if (stack.length >= limits.maxDepth) return fail('depth');
      i = skipWs(text, i + 1);
      const empty = text.charCodeAt(i) === (c === LBRACE ? RBRACE : RBRACKET);
      if (c === LBRACE) {
        const object: Record<string, unknown> = {};
        if (empty) value = object;
        else stack.push({ object, keys: new Set(), key: '' });
      } else {
        const array: unknown[] = [];
        if (empty) value = array;
        else stack.push({ array });
      }
      if (empty) i++;
      else {
        expectKey = c === LBRACE;
        continue;
      }
    } else if (c === QUOTE) {
      const end = scanString(text, i);
      if (end === -1) return fail('syntax');
      value = decodeString(text, i, end);
      i = end;
    } else if (c === MINUS || isDigit(c)) {
      const end = scanNumber(text, i);
      if (end === -1) return fail('syntax');
      value = Number(text.slice(i, end));
      i = end;
    } else if (text.startsWith('true', i)) {
      value = true;
      i += 4;
    } else if (text.startsWith('false', i)) {
      value = false;
      i += 5;
    } else if (text.startsWith('null', i)) {
      value = null;
      i += 4;
    } else {
      return fail('syntax');
    }
    // After a value: put it in its container, close containers, or go on to the next member or element.
    for (;;) {
      i = skipWs(text, i);
      const top = stack[stack.length - 1];
      if (top === undefined) return i === n ? { ok: true, value } : fail('syntax');
      if ('array' in top) top.array.push(value);
      else define(top.object, top.key, value);
      const d = text.charCodeAt(i);
      if (d === COMMA) {
        i = skipWs(text, i + 1);
        expectKey = !('array' in top);
        break;
      }
      if (d === ('array' in top ? RBRACKET : RBRACE)) {
        stack.pop();
        value = 'array' in top ? top.array : top.object;
        i++;
        continue;
      }
      return fail('syntax');
    }
  }
}
