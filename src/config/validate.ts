import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

function isHttpUrl(value: string, allowPath: boolean): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.username || url.password || url.search || url.hash) return false;
  return allowPath || url.pathname === '/';
}

/** One ajv instance per schema compile, with the formats our schemas use. */
export function compileSchema<T>(schema: object, options: { coerceTypes?: boolean } = {}): ValidateFunction<T> {
  // verbose: each error carries the offending value and its schema, which the messages below quote.
  const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: options.coerceTypes ?? false, strict: false, verbose: true });
  ajv.addFormat('http-url', (v: string) => isHttpUrl(v, true));
  ajv.addFormat('backend-url', (v: string) => isHttpUrl(v, true));
  // No path: Gatehouse serves /auth, /api and the SPA at the root of its origin.
  ajv.addFormat('base-url', (v: string) => isHttpUrl(v, false));
  ajv.addFormat('origin', (v: string) => isHttpUrl(v, false) && new URL(v).origin === v);
  return ajv.compile<T>(schema);
}

/** Fields whose values are never repeated in a message: their length is said instead. */
const SECRET_FIELD = /secret|token|password/i;

/** What a field's value is, quoted for a message, or only its length for a secret (and a URL's password hidden). */
function shown(field: string, value: unknown): string {
  if (typeof value === 'string' && SECRET_FIELD.test(field)) return `${value.length} characters`;
  if (typeof value === 'string' && URL.canParse(value)) {
    const url = new URL(value);
    // Only a URL that may carry a secret is rewritten; any other value is quoted exactly as it was given.
    if (url.username || url.password || url.search) return JSON.stringify(printableUrl(value));
  }
  return JSON.stringify(value);
}

/**
 * A URL fit to print in a message or a report: scheme, host, port and path. A password may sit in the userinfo or,
 * for ioredis, in a `?password=` parameter: the password is masked and a query shown only as `?…`.
 */
export function printableUrl(url: string): string {
  if (!URL.canParse(url)) return '(unparseable URL)';
  const parsed = new URL(url);
  const query = parsed.search !== '';
  if (parsed.password) parsed.password = '***';
  parsed.search = '';
  parsed.hash = '';
  return `${parsed.href}${query ? '?…' : ''}`;
}

/**
 * The known name closest to `name`: a different case, a prefix either way (`timeout` for `timeoutMs`), or at most
 * two edits away (`bakend`). Undefined when nothing is that close.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const exact = known.find((k) => k.toLowerCase() === lower);
  if (exact) return exact;
  const prefix = known.find((k) => lower.length >= 3 && (k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase())));
  if (prefix) return prefix;
  let best: { name: string; distance: number } | undefined;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d <= 2 && d < lower.length / 2 && (best === undefined || d < best.distance)) best = { name: k, distance: d };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/** Why a value is not the URL a format asks for, and what to write instead when that is clear. */
function explainUrl(value: unknown, format: string): string {
  const text = String(value);
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text))
    return `${JSON.stringify(text)} is not an http(s) URL; write ${JSON.stringify(`http://${text}`)}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${JSON.stringify(text)} is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${JSON.stringify(text)}: only http and https are accepted`;
  if (url.username || url.password) return 'must not carry user:password (credentials in a URL end up in logs)';
  if (url.search || url.hash) return `${JSON.stringify(text)}: must not carry a query or a fragment`;
  if (format === 'origin' || format === 'base-url')
    return `${JSON.stringify(text)}: must be scheme://host[:port] with no path; write ${JSON.stringify(url.origin)}`;
  return `${JSON.stringify(text)} is not an accepted URL`;
}

/** One ajv error as a person needs it: what is wrong, the value that is (secrets only by length), and what would do. */
function reasonFor(e: ErrorObject, name: string): string {
  const got = e.data === undefined ? '' : ` (got ${shown(name, e.data)})`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ?? {});
      const near = nearestName(String(e.params['additionalProperty']), known);
      return `is not a known field${near ? `; did you mean \`${near}\`?` : known.length > 0 ? ` (known: ${known.join(', ')})` : ''}`;
    }
    case 'required':
      return 'is required';
    case 'enum': {
      const allowed = (e.params['allowedValues'] as unknown[]).map(String);
      const near = typeof e.data === 'string' ? nearestName(e.data, allowed) : undefined;
      return `must be one of ${allowed.join(', ')}${got}${near ? `; did you mean ${near}?` : ''}`;
    }
    case 'format':
      return explainUrl(e.data, String(e.params['format']));
    case 'const': {
      const hint = (e.parentSchema as { description?: string } | undefined)?.description;
      return `must be ${JSON.stringify(e.params['allowedValue'])}${got}${hint ? `; ${hint}` : ''}`;
    }
    case 'minLength':
      if (name === 'ADMIN_TOKEN') {
        return `is ${String(e.data).length} characters; it needs at least ${String(e.params['limit'])}: make one with \`openssl rand -base64 48\``;
      }
      return `${e.message ?? 'is too short'}${got}`;
    default:
      return `${e.message ?? 'is invalid'}${got}`;
  }
}

/** Turns ajv errors into lines naming the source and the field path, the value and what would be accepted. */
export function describeErrors(source: string, errors: readonly ErrorObject[] | null | undefined, pathStyle: 'pointer' | 'name'): string[] {
  // An if/then/else failure adds a line of its own ('must match "then" schema'): the branch's error already says it.
  return (errors ?? [])
    .filter((e) => e.keyword !== 'if')
    .map((e) => {
      let field = e.instancePath;
      if (e.keyword === 'required') field += `/${String(e.params['missingProperty'])}`;
      if (e.keyword === 'additionalProperties') field += `/${String(e.params['additionalProperty'])}`;
      if (pathStyle === 'name') field = field.replace(/^\//, '');
      return `${source} ${field || '(root)'}: ${reasonFor(e, field.split('/').pop() ?? field)}`;
    });
}
