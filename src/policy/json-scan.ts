/**
 * A single pass over a JSON text (RFC 8259) that refuses what a schema check must never be handed: nesting deeper
 * than a limit, more object members than a limit, and an object naming the same key twice. It runs before
 * JSON.parse and ajv, iteratively (an explicit stack, no recursion), so hostile nesting costs one loop and no stack
 * (CodeQL js/resource-exhaustion-from-deep-object-traversal; ajv's own "stack overflow on deep data").
 *
 * Duplicate keys are refused because JSON.parse keeps the last one while many backend parsers keep the first: a body
 * checked as `{"amount":1}` could be paid as `{"amount":1000000}` (security-cases 108b). Keys are compared after
 * their escapes are decoded, as both parsers see them ("a" and "\u0061" are the same key).
 *
 * Whatever this accepts, JSON.parse accepts (a property test checks it against generated and near-JSON text).
 */
export type JsonScanFailure = 'syntax' | 'depth' | 'keys' | 'duplicate_key';

export interface JsonScanLimits {
  /** Containers (objects and arrays) nested at most this deep; the top-level value is depth 1. */
  readonly maxDepth: number;
  /** Object members in the whole document. */
  readonly maxKeys: number;
}

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
/** Objects with up to this many keys are checked for repeats by a linear search (cheaper than a Set at that size). */
const SMALL = 16;

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

/** Index after the string starting at `i` (its opening quote), or -1; `escaped[0]` tells whether it had escapes. */
// A run of characters a string holds as they are: the regex engine skips it faster than a loop of charCodeAt.
const PLAIN = /[^"\\\x00-\x1f]*/y;

function scanString(text: string, i: number, escaped: boolean[]): number {
  escaped[0] = false;
  i++;
  for (;;) {
    PLAIN.lastIndex = i;
    PLAIN.test(text);
    i = PLAIN.lastIndex;
    const c = text.charCodeAt(i);
    if (Number.isNaN(c) || c < SPACE) return -1;
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      escaped[0] = true;
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
      continue;
    }
    i++;
  }
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

/** Undefined when `text` is one JSON value within the limits and with no repeated key; else why not. */
export function scanJson(text: string, limits: JsonScanLimits): JsonScanFailure | undefined {
  const n = text.length;
  // One entry per open container: the keys seen so far for an object (a list while short, a set past SMALL), null for an array.
  const stack: Array<string[] | Set<string> | null> = [];
  const escaped = [false];
  let keys = 0;
  let i = skipWs(text, 0);
  let expectKey = false;
  for (;;) {
    if (expectKey) {
      if (text.charCodeAt(i) !== QUOTE) return 'syntax';
      const end = scanString(text, i, escaped);
      if (end === -1) return 'syntax';
      const key = escaped[0] ? (JSON.parse(text.slice(i, end)) as string) : text.slice(i + 1, end - 1);
      const seen = stack[stack.length - 1] as string[] | Set<string>;
      if (Array.isArray(seen)) {
        if (seen.includes(key)) return 'duplicate_key';
        seen.push(key);
        if (seen.length > SMALL) stack[stack.length - 1] = new Set(seen);
      } else {
        if (seen.has(key)) return 'duplicate_key';
        seen.add(key);
      }
      if (++keys > limits.maxKeys) return 'keys';
      i = skipWs(text, end);
      if (text.charCodeAt(i) !== COLON) return 'syntax';
      i = skipWs(text, i + 1);
      expectKey = false;
    }
    // A value starts at i.
    const c = text.charCodeAt(i);
    if (c === LBRACE || c === LBRACKET) {
      if (stack.length >= limits.maxDepth) return 'depth';
      i = skipWs(text, i + 1);
      if (text.charCodeAt(i) === (c === LBRACE ? RBRACE : RBRACKET)) {
        i++;
      } else {
        stack.push(c === LBRACE ? [] : null);
        expectKey = c === LBRACE;
        continue;
      }
    } else if (c === QUOTE) {
      i = scanString(text, i, escaped);
      if (i === -1) return 'syntax';
    } else if (c === MINUS || isDigit(c)) {
      i = scanNumber(text, i);
      if (i === -1) return 'syntax';
    } else if (text.startsWith('true', i) || text.startsWith('null', i)) {
      i += 4;
    } else if (text.startsWith('false', i)) {
      i += 5;
    } else {
      return 'syntax';
    }
    // After a value: close containers, or go on to the next member or element.
    for (;;) {
      i = skipWs(text, i);
      if (stack.length === 0) return i === n ? undefined : 'syntax';
      const top = stack[stack.length - 1];
      const d = text.charCodeAt(i);
      if (d === COMMA) {
        i = skipWs(text, i + 1);
        expectKey = top !== null;
        break;
      }
      if (d === (top === null ? RBRACKET : RBRACE)) {
        stack.pop();
        i++;
        continue;
      }
      return 'syntax';
    }
  }
}
