import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { schemaBoundsProblem } from '../config/schema-refs.ts';
import type { SchemaEntryConfig } from '../config/types.ts';
import { ConfigError, GatehouseError } from '../errors.ts';
import { parseJson, type JsonScanLimits } from './json-scan.ts';
import { compileMethods, compilePathPattern, type MethodPathEntry } from './path-pattern.ts';
import type { Route } from './route-table.ts';

/**
 * JSON-Schema checks at the edge (config.yml `schemas`): compiled once per config snapshot, looked up per request.
 * The query is checked during admission (HTTP and WebSocket alike); the body by the HTTP adapter, on the bytes it
 * buffered, which are then forwarded as they are.
 */

/** Bounds on the JSON a body check parses (over either: 400 invalid_json, before JSON.parse or ajv runs). */
export const BODY_JSON_LIMITS: JsonScanLimits = Object.freeze({ maxDepth: 64, maxKeys: 10_000 });
/** The longest `pattern` a schema may hold. */
const MAX_PATTERN_LENGTH = 1000;
/** At most this many characters of a path or message go into an error detail. */
const DETAIL_MAX = 200;

export interface SchemaCheck {
  /** Index of the entry in config.yml's `schemas`. */
  readonly index: number;
  readonly body: ValidateFunction | undefined;
  readonly query: ValidateFunction | undefined;
  readonly maxBodyBytes: number;
}

export interface SchemaTable {
  readonly size: number;
  /** The first entry matching the method and the path after /api. */
  find(method: string, path: string): SchemaCheck | undefined;
  /** The methods entries declare for this path (for Allow); undefined when none matches it. */
  methodsFor(path: string): readonly string[] | undefined;
}

const EMPTY_TABLE: SchemaTable = Object.freeze({ size: 0, find: () => undefined, methodsFor: () => undefined });

/**
 * Refuses patterns that can backtrack exponentially (AJV security "ReDoS"; `^(a|a)*$`, `(a+)+$`): a repeated group that
 * itself holds a quantifier or an alternation, and backreferences. Conservative on purpose: `(a|b)*` is refused too
 * (write `[ab]*`). Linear-but-slow patterns are not caught: bound strings with maxLength as well.
 */
export function backtrackingRisk(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_LENGTH) return `is longer than ${MAX_PATTERN_LENGTH} characters`;
  // One flag per open group: it holds a quantifier or an alternation.
  const groups: boolean[] = [false];
  let closedGroupRisky = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    let quantifier = '';
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9k]/.test(next)) return 'uses a backreference, which can backtrack exponentially';
      i++;
    } else if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < pattern.length && pattern[i] !== ']') i += pattern[i] === '\\' ? 2 : 1;
    } else if (c === '(') {
      groups.push(false);
      // (?:  (?=  (?!  (?<=  (?<!  (?<name>: group syntax, not a quantifier.
      if (pattern[i + 1] === '?') {
        if (pattern[i + 2] === '<' && pattern[i + 3] !== '=' && pattern[i + 3] !== '!') i = Math.max(i, pattern.indexOf('>', i));
        else i += pattern[i + 2] === '<' ? 3 : 2;
      }
      closedGroupRisky = false;
      continue;
    } else if (c === ')') {
      const risky = groups.pop() ?? false;
      if (groups.length === 0) return 'has an unbalanced ")"';
      if (risky) groups[groups.length - 1] = true;
      closedGroupRisky = risky;
      continue;
    } else if (c === '|') {
      groups[groups.length - 1] = true;
    } else if (c === '*' || c === '+' || c === '?') {
      quantifier = c;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        quantifier = max > 1 ? '+' : '?';
        i += m[0].length - 1;
      }
    }
    if (quantifier !== '') {
      if (quantifier !== '?' && closedGroupRisky)
        return 'repeats a group that holds a quantifier or an alternation (nested quantifiers backtrack exponentially): use a character class, e.g. [ab]* for (a|b)*';
      groups[groups.length - 1] = true;
      if (pattern[i + 1] === '?') i++;
    }
    closedGroupRisky = false;
  }
  return undefined;
}

const lintedRegExp = Object.assign(
  (pattern: string, flags: string) => {
    const risk = backtrackingRisk(pattern);
    if (risk !== undefined) throw new Error(`pattern ${JSON.stringify(pattern)} ${risk}`);
    return new RegExp(pattern, flags);
  },
  { code: 'new RegExp' },
);

function createAjv(forQuery: boolean): Ajv {
  return new Ajv({
    strict: true,
    allowUnionTypes: true,
    // One error is all a client is told, and all ajv looks for: allErrors on hostile input is a DoS (CodeQL).
    allErrors: false,
    $data: false,
    // A query arrives as strings (arrays for repeated keys): coerced on Gatehouse's own copy, for the check only.
    coerceTypes: forQuery ? 'array' : false,
    useDefaults: false,
    // Two entries may carry the same $id without one replacing the other.
    addUsedSchema: false,
    code: { regExp: lintedRegExp },
  });
}

/**
 * Compiles config.yml's `schemas` (ajv strict mode, allErrors off, no $data, patterns linted). Throws ConfigError
 * naming every entry that does not compile: a configuration with one bad schema is refused whole.
 */
export function compileSchemas(entries: readonly SchemaEntryConfig[] | undefined): SchemaTable {
  if (!entries || entries.length === 0) return EMPTY_TABLE;
  const problems: string[] = [];
  const ajv = { body: createAjv(false), query: createAjv(true) };
  const table: MethodPathEntry<SchemaCheck>[] = [];
  entries.forEach((e, index) => {
    const at = `config.yml /schemas/${index}`;
    let pattern;
    try {
      pattern = compilePathPattern(e.path);
    } catch (err) {
      problems.push(`${at}/path: ${(err as Error).message}`);
      return;
    }
    const compiled: { body?: ValidateFunction; query?: ValidateFunction } = {};
    for (const part of ['body', 'query'] as const) {
      const schema = e[part];
      if (schema === undefined) continue;
      const bounds = schemaBoundsProblem(schema);
      if (bounds !== undefined) {
        problems.push(`${at}/${part}: ${bounds}`);
        continue;
      }
      try {
        compiled[part] = ajv[part].compile(schema);
      } catch (err) {
        problems.push(`${at}/${part}: ${(err as Error).message}`);
      }
    }
    const methods = compileMethods(e.methods ?? (e.method === undefined ? undefined : [e.method]));
    table.push({ methods, pattern, value: { index, body: compiled.body, query: compiled.query, maxBodyBytes: e.maxBodyBytes } });
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    size: table.length,
    find(method, path) {
      for (const e of table) if ((e.methods === undefined || e.methods.includes(method)) && e.pattern.matches(path)) return e.value;
      return undefined;
    },
    methodsFor(path) {
      const methods = new Set<string>();
      for (const e of table) {
        if (!e.pattern.matches(path)) continue;
        if (e.methods === undefined) return undefined;
        for (const m of e.methods) methods.add(m);
      }
      return methods.size === 0 ? undefined : [...methods];
    },
  };
}

/**
 * The schema step of admission: the entry for this request (its query checked here), or a refusal when the mapping
 * has `strictSchemas` and no entry declares the request. Undefined when nothing applies.
 */
export function admitSchema(table: SchemaTable, route: Route, method: string, path: string, query: string): SchemaCheck | undefined {
  const check = table.find(method, path);
  if (!check) {
    if (!route.strictSchemas) return undefined;
    const allowed = table.methodsFor(path);
    if (allowed)
      throw new GatehouseError('method_not_allowed', {
        headers: ['allow', allowed.join(', ')],
        logDetail: 'strictSchemas: no entry for this method',
      });
    throw new GatehouseError('not_found', { logDetail: 'strictSchemas: no schemas entry for this path' });
  }
  if (check.query) {
    // Rack before 3 and Python before 3.9.2 split on ";" as on "&": `?id=1;limit=100000` would be one checked value
    // here and a second, unchecked parameter there. A ";" meant as data is written %3B.
    if (query.includes(';')) throw invalid('query', [{ instancePath: '', message: 'has a raw ";" (write %3B)' }]);
    const data = parseQuery(query);
    if (data === undefined) throw invalid('query', [{ instancePath: '', message: 'malformed percent-encoding' }]);
    if (!check.query(data)) throw invalid('query', check.query.errors);
  }
  return check;
}

type QueryValue = string | string[];

/**
 * The query string as an object with no prototype (`?__proto__[x]=1` is a key like any other, and inert), repeated
 * keys as arrays, so a scalar schema refuses `?limit=1&limit=2` (HTTP parameter pollution: a backend may read either).
 * Brackets mean nothing: `id[]` is a key. Undefined when a %-escape is malformed.
 */
export function parseQuery(query: string): Record<string, QueryValue> | undefined {
  const out = Object.create(null) as Record<string, QueryValue>;
  const start = query.startsWith('?') ? 1 : 0;
  if (query.length <= start) return out;
  for (const pair of query.slice(start).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(pair.slice(eq + 1));
    if (key === undefined || value === undefined) return undefined;
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

function decodeComponent(s: string): string | undefined {
  try {
    return decodeURIComponent(s.includes('+') ? s.replaceAll('+', ' ') : s);
  } catch {
    return undefined;
  }
}

const JSON_TYPE = /^application\/json$/i;
const PARAM = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("?)([^";]*)\2\s*$/;

/**
 * A checked body must be what the check parsed: `application/json` (no other type, not even `+json` ones, which a
 * backend may not parse as JSON, or parse differently), UTF-8 (the only charset given, if any), and no
 * Content-Encoding (the size limit must bound what the backend inflates and parses: security-cases 110). One
 * Content-Type header only: a backend reading another copy than Gatehouse would parse what was not checked.
 */
export function checkBodyMediaType(contentTypes: readonly string[], contentEncodings: readonly string[]): void {
  for (const enc of contentEncodings) {
    for (const coding of enc.split(',')) {
      const c = coding.trim().toLowerCase();
      if (c !== '' && c !== 'identity')
        throw new GatehouseError('unsupported_media_type', { logDetail: 'Content-Encoding on a checked body' });
    }
  }
  if (contentTypes.length !== 1)
    throw new GatehouseError('unsupported_media_type', { logDetail: `${contentTypes.length} Content-Type headers` });
  const [type, ...params] = (contentTypes[0] as string).split(';');
  if (!JSON_TYPE.test((type as string).trim())) throw new GatehouseError('unsupported_media_type', { logDetail: 'not application/json' });
  for (const p of params) {
    const m = PARAM.exec(p);
    if (!m || (m[1] as string).toLowerCase() !== 'charset' || (m[3] as string).toLowerCase() !== 'utf-8')
      throw new GatehouseError('unsupported_media_type', { logDetail: 'a parameter other than charset=utf-8' });
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Checks a whole buffered body against the entry's schema: strict UTF-8 (a BOM is kept, and then refused as JSON),
 * parsed within bounds on depth and key count and with no duplicate key (json-scan.ts), validated. Throws invalid_json or validation_failed.
 */
export function checkBody(check: SchemaCheck, bytes: Buffer): void {
  const validate = check.body;
  if (!validate) return;
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new GatehouseError('invalid_json', { details: { reason: 'encoding' }, logDetail: 'body is not UTF-8' });
  }
  const parsed = parseJson(text, BODY_JSON_LIMITS);
  if (!parsed.ok)
    throw new GatehouseError('invalid_json', { details: { reason: parsed.failure }, logDetail: `body JSON: ${parsed.failure}` });
  if (!validate(parsed.value)) throw invalid('body', validate.errors);
}

function invalid(
  part: 'body' | 'query',
  errors: ReadonlyArray<Pick<ErrorObject, 'instancePath' | 'message'> & Partial<ErrorObject>> | null | undefined,
): GatehouseError {
  const details = (errors ?? []).slice(0, 1).map((e) => {
    // ajv's message is built from the schema (the operator's text); only what came from the request is escaped.
    let message = (e.message ?? 'is not valid').slice(0, DETAIL_MAX);
    const extra = e.keyword === 'additionalProperties' ? (e.params as { additionalProperty?: unknown }).additionalProperty : undefined;
    if (typeof extra === 'string') message += ` (${safeText(extra)})`;
    return { in: part, path: safeText(e.instancePath), message };
  });
  return new GatehouseError('validation_failed', { details: { details }, logDetail: `${part} does not match schemas entry` });
}

/**
 * Text from the request (property names in a path or message) made inert before it goes into a response: anything
 * outside a small safe set is %-escaped by UTF-16 code unit, and the length is bounded (CodeQL js/xss-through-exception).
 */
function safeText(text: string): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < DETAIL_MAX; i++) {
    const c = text.charCodeAt(i);
    const safe = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || ' _-.~/:@'.includes(text[i] as string);
    out += safe
      ? text[i]
      : c <= 0xff
        ? `%${c.toString(16).padStart(2, '0').toUpperCase()}`
        : `%u${c.toString(16).padStart(4, '0').toUpperCase()}`;
  }
  return out.length >= DETAIL_MAX ? `${out.slice(0, DETAIL_MAX)}…` : out;
}
