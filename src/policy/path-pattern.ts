/**
 * The path pattern language of schema entries and route rules: the path after `/api`, where `:name` matches one
 * segment and a trailing `*` matches the rest (none or more segments). No regular expressions are built from a
 * pattern, so no pattern can backtrack (path-to-regexp CVE-2024-45296 came from `/:a-:b`).
 *
 * Patterns match the path routing sees (splitApiTarget has refused dot segments, empty segments and encoded
 * separators or unreserved characters): literal segments compare case-insensitively, as prefix routing does, and a
 * trailing slash is ignored, because backends commonly treat `/items/` as `/items` and a spelling that routes to
 * the same handler must meet the same rule.
 */
export interface PathPattern {
  readonly source: string;
  matches(path: string): boolean;
}

type Segment = { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'param' };

const PARAM = /^:[A-Za-z_][A-Za-z0-9_]*$/;
// What splitApiTarget lets through a segment, less the characters the pattern language gives a meaning to.
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,=@]+$/;

/** Throws an Error whose message says what is wrong with the pattern (the config loader adds where it is). */
export function compilePathPattern(source: string): PathPattern {
  if (!source.startsWith('/')) throw new Error(`must start with "/" (the path after /api), e.g. "/v2/items/:id"`);
  const trimmed = source.length > 1 && source.endsWith('/') ? source.slice(0, -1) : source;
  const parts = trimmed === '/' ? [] : trimmed.slice(1).split('/');
  let rest = false;
  const segments: Segment[] = [];
  parts.forEach((part, i) => {
    if (part === '*') {
      if (i !== parts.length - 1) throw new Error(`"*" may only be the last segment (it matches the rest of the path)`);
      rest = true;
    } else if (part.startsWith(':')) {
      if (!PARAM.test(part)) throw new Error(`"${part}" is not a parameter: use ":name" alone in its segment (letters, digits, _)`);
      segments.push({ kind: 'param' });
    } else if (part === '' || part === '.' || part === '..') {
      throw new Error(`empty and dot segments never reach a backend, so a pattern cannot name them`);
    } else if (!LITERAL.test(part)) {
      throw new Error(`segment "${part}" has characters a pattern cannot match: letters, digits and -._~!$&'()+,=@ only`);
    } else {
      segments.push({ kind: 'literal', text: part.toLowerCase() });
    }
  });
  return Object.freeze({
    source,
    matches(path: string): boolean {
      let end = path.length;
      if (end > 1 && path.charCodeAt(end - 1) === 47 /* / */) end--;
      let at = 1; // after the leading "/"
      const escaped = path.includes('%');
      for (const seg of segments) {
        if (at > end) return false;
        let next = path.indexOf('/', at);
        if (next === -1 || next > end) next = end;
        if (next === at) return false;
        if (seg.kind === 'literal') {
          const pct = escaped ? path.indexOf('%', at) : -1;
          if (pct !== -1 && pct < next) {
            // Reserved characters may arrive encoded (%40 for @), and a backend that decodes serves both spellings alike.
            if (decodeAsciiEscapes(path.slice(at, next)).toLowerCase() !== seg.text) return false;
          } else {
            if (next - at !== seg.text.length) return false;
            if (path.slice(at, next).toLowerCase() !== seg.text) return false;
          }
        }
        at = next + 1;
      }
      return rest || at > end || (segments.length === 0 && end <= 1);
    },
  });
}

function decodeAsciiEscapes(segment: string): string {
  return segment.replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** An entry of a method + pattern list (schemas, route rules): first match wins. */
export interface MethodPathEntry<T> {
  /** Uppercase methods; undefined: any. An entry naming GET also covers HEAD (the same resource, without its body). */
  readonly methods: readonly string[] | undefined;
  readonly pattern: PathPattern;
  readonly value: T;
}

export function compileMethods(methods: readonly string[] | undefined): readonly string[] | undefined {
  if (methods === undefined) return undefined;
  const upper = methods.map((m) => m.toUpperCase());
  if (upper.includes('*')) return undefined;
  return upper.includes('GET') && !upper.includes('HEAD') ? [...upper, 'HEAD'] : upper;
}

export function firstEntry<T>(entries: readonly MethodPathEntry<T>[], method: string, path: string): T | undefined {
  for (const e of entries) {
    if ((e.methods === undefined || e.methods.includes(method)) && e.pattern.matches(path)) return e.value;
  }
  return undefined;
}
