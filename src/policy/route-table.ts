import type { AuthPolicy, FileConfig, IdentityHeaderEncoding, MappingConfig, RouteRuleConfig } from '../config/types.ts';
import { ConfigError } from '../errors.ts';
import { compileClaimCheck, type ClaimCheck } from './claims.ts';
import { compileMethods, compilePathPattern, type MethodPathEntry } from './path-pattern.ts';
import { compileEdge, type EdgePolicy } from './edge.ts';
import { compileRateLimit, type RateLimit } from './rate-limit.ts';

/** A mapping's route rule, compiled: what admission applies to a request it matches (stages 4 and 5). */
export interface RouteRule {
  /** `mappings[0].rules[2]`, for logs. */
  readonly name: string;
  /** The rule's auth, else the mapping's. */
  readonly auth: AuthPolicy;
  /** Uppercase allowlist (HEAD with GET); undefined: any method. */
  readonly methods: readonly string[] | undefined;
  /** The Allow header a 405 carries. */
  readonly allow: string;
  readonly claims: ClaimCheck | undefined;
  /** The rule's own limit (a bucket of its own), else the mapping's; undefined: none. */
  readonly rateLimit: RateLimit | undefined;
}

export interface Route {
  /** Index in config.yml's mappings, or -1 for defaultBackend (for logs and metrics). */
  readonly index: number;
  readonly name: string;
  readonly origin: string;
  /** Backend URL path without a trailing slash ('' for none); prepended to the forwarded path. */
  readonly basePath: string;
  readonly port: number | undefined;
  readonly prefix: string;
  readonly auth: AuthPolicy;
  readonly timeoutMs: number;
  readonly websocket: boolean;
  readonly forwardAccessToken: boolean;
  /** Without a Gatehouse identity, the client's own Authorization header is passed on (else removed). */
  readonly passAuthorization: boolean;
  /** [header, claim] pairs, lowercase header names. */
  readonly identityHeaders: ReadonlyArray<readonly [string, string]>;
  /**
   * Identity header names outside x-user-* that any mapping injects, stripped from the client on every route:
   * one backend is often behind several mappings and trusts the header whichever one the request came through.
   */
  readonly extraStrip: readonly string[];
  /** Headers mapped from `email` go out without `email_verified: true` (an opt-out, off by default). */
  readonly sendUnverifiedEmail: boolean;
  readonly identityHeaderEncoding: IdentityHeaderEncoding;
  /** The mapping's rules in order (first match wins); empty when it has none. */
  readonly rules: readonly MethodPathEntry<RouteRule>[];
  /** CORS answers and the CSRF check (policy/edge.ts). */
  readonly edge: EdgePolicy;
  /** The mapping's /api limit (its own, else rateLimits.api), or undefined for none. */
  readonly rateLimit: RateLimit | undefined;
  /** Only the endpoints config.yml's `schemas` declares exist here (policy/schemas.ts admitSchema). */
  readonly strictSchemas: boolean;
}

export interface RouteTable {
  resolve(host: string, port: number, path: string): Route | undefined;
  readonly routes: readonly Route[];
}

export const DEFAULT_IDENTITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['x-user-sub', 'sub'],
  ['x-user-email', 'email'],
  ['x-user-name', 'name'],
];

const HOW_TO_FIX = 'write the path after /api with literal segments, ":name" for one segment and a final "*" for the rest, e.g. "/admin/*"';

/** Whether a pattern can match anything under the mapping's pathPrefix (rules see the whole path after /api). */
function reachable(pattern: string, prefix: string): boolean {
  if (prefix === '') return true;
  const want = prefix.slice(1).split('/');
  const have = (pattern.length > 1 && pattern.endsWith('/') ? pattern.slice(0, -1) : pattern).slice(1).split('/');
  for (let i = 0; i < want.length; i++) {
    const seg = have[i];
    if (seg === undefined) return false;
    if (seg === '*') return true;
    if (!seg.startsWith(':') && seg.toLowerCase() !== want[i]) return false;
  }
  return true;
}

function compileRules(
  rules: readonly RouteRuleConfig[],
  mapping: string,
  idPrefix: string,
  mappingAuth: AuthPolicy,
  mappingLimit: RateLimit | undefined,
  prefix: string,
  problems: string[],
): MethodPathEntry<RouteRule>[] {
  const out: MethodPathEntry<RouteRule>[] = [];
  rules.forEach((r, j) => {
    const name = `${mapping}.rules[${j}]`;
    let pattern;
    try {
      pattern = compilePathPattern(r.match.path);
    } catch (err) {
      problems.push(`GATEHOUSE_CONFIG ${name}.match.path: "${r.match.path}" ${(err as Error).message}; ${HOW_TO_FIX}`);
      return;
    }
    if (!reachable(r.match.path, prefix))
      problems.push(
        `GATEHOUSE_CONFIG ${name}.match.path: "${r.match.path}" can never match: rules see the whole path after /api, ` +
          `pathPrefix included, so start it with "${prefix}" (e.g. "${prefix}/admin/*")`,
      );
    const auth = r.auth ?? mappingAuth;
    if (auth === 'none' && (r.requireClaims !== undefined || r.emailDomains !== undefined))
      problems.push(
        `GATEHOUSE_CONFIG ${name}: requireClaims and emailDomains need an identity, which auth: none never looks up; ` +
          `set auth: required on the rule (or optional, and anonymous callers get 401)`,
      );
    const methods = compileMethods(r.methods);
    out.push({
      methods: compileMethods(r.match.methods),
      pattern,
      value: Object.freeze({
        name,
        auth,
        methods,
        allow: (methods ?? []).join(', '),
        claims: compileClaimCheck(r.requireClaims, r.emailDomains),
        rateLimit: r.rateLimit === undefined ? mappingLimit : compileRateLimit(`${idPrefix}-rule-${j}`, r.rateLimit, 'throw'),
      }),
    });
  });
  return out;
}

function compileRoute(
  m: Omit<MappingConfig, 'frontendHost'>,
  index: number,
  name: string,
  extraStrip: readonly string[],
  file: FileConfig,
  apiLimit: RateLimit | undefined,
  problems: string[] = [],
): Route {
  const url = new URL(m.backend);
  const prefix = (m.pathPrefix ?? '').toLowerCase();
  // /api limits fail open when Redis fails: sessions fail closed already, and an outage must not become a 429 storm.
  const rateLimit = m.rateLimit === undefined ? apiLimit : compileRateLimit(`mapping-${index}`, m.rateLimit, 'throw');
  return {
    index,
    name,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    port: m.frontendPort,
    prefix,
    auth: m.auth,
    timeoutMs: m.timeoutMs,
    websocket: m.websocket,
    forwardAccessToken: m.forwardAccessToken,
    passAuthorization: m.passAuthorization,
    identityHeaders: m.identityHeaders
      ? Object.entries(m.identityHeaders).map(([h, c]) => [h.toLowerCase(), c] as const)
      : DEFAULT_IDENTITY_HEADERS,
    extraStrip,
    sendUnverifiedEmail: m.sendUnverifiedEmail ?? false,
    identityHeaderEncoding: m.identityHeaderEncoding ?? 'rfc8187',
    rules: m.rules ? compileRules(m.rules, name, `mapping-${index}`, m.auth, rateLimit, prefix, problems) : [],
    rateLimit,
    strictSchemas: m.strictSchemas ?? false,
    edge: compileEdge(m, file),
  };
}

// Longest prefix first; at equal length, a mapping that names the port beats one that does not.
const bySpecificity = (a: Route, b: Route) =>
  b.prefix.length - a.prefix.length || Number(b.port !== undefined) - Number(a.port !== undefined);

function prefixMatches(prefix: string, lowerPath: string): boolean {
  if (prefix === '') return true;
  if (!lowerPath.startsWith(prefix)) return false;
  return lowerPath.length === prefix.length || lowerPath.charCodeAt(prefix.length) === 47; /* / */
}

function firstMatch(list: readonly Route[] | undefined, port: number, lowerPath: string): Route | undefined {
  if (!list) return undefined;
  for (const r of list) {
    if ((r.port === undefined || r.port === port) && prefixMatches(r.prefix, lowerPath)) return r;
  }
  return undefined;
}

/**
 * Compiles mappings once per config snapshot. Precedence: exact host, then the longest matching
 * `*.suffix`, then `*`; within a host tier the longest path prefix (on segment boundaries), then
 * host-only; then defaultBackend. Throws ConfigError naming every rule that does not compile.
 */
export function compileRoutes(file: FileConfig): RouteTable {
  const exact = new Map<string, Route[]>();
  const wildcard = new Map<string, Route[]>();
  const any: Route[] = [];
  const all: Route[] = [];
  const extraStrip = [...new Set(file.mappings.flatMap((m) => Object.keys(m.identityHeaders ?? {}).map((h) => h.toLowerCase())))].filter(
    (h) => !h.startsWith('x-user-'),
  );
  const apiLimit = compileRateLimit('api', file.rateLimits?.api, 'throw');
  const problems: string[] = [];
  file.mappings.forEach((m, i) => {
    const route = compileRoute(m, i, `mappings[${i}]`, extraStrip, file, apiLimit, problems);
    all.push(route);
    const host = m.frontendHost.startsWith('[') ? (canonicalIpv6(m.frontendHost) ?? m.frontendHost) : m.frontendHost.toLowerCase();
    if (host === '*') any.push(route);
    else if (host.startsWith('*.')) wildcard.set(host.slice(1), [...(wildcard.get(host.slice(1)) ?? []), route]);
    else exact.set(host, [...(exact.get(host) ?? []), route]);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  for (const list of [...exact.values(), ...wildcard.values(), any]) list.sort(bySpecificity);
  const fallback = file.defaultBackend
    ? compileRoute(
        {
          backend: file.defaultBackend,
          auth: 'required',
          timeoutMs: 30000,
          websocket: true,
          forwardAccessToken: false,
          passAuthorization: false,
        },
        -1,
        'defaultBackend',
        extraStrip,
        file,
        apiLimit,
      )
    : undefined;
  if (fallback) all.push(fallback);
  const anyPrefix = all.some((r) => r.prefix !== '');

  return {
    routes: all,
    resolve(host, port, path) {
      const lowerPath = anyPrefix ? path.toLowerCase() : path;
      const hit = firstMatch(exact.get(host), port, lowerPath);
      if (hit) return hit;
      if (wildcard.size > 0) {
        for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
          const found = firstMatch(wildcard.get(host.slice(dot)), port, lowerPath);
          if (found) return found;
        }
      }
      return firstMatch(any, port, lowerPath) ?? fallback;
    },
  };
}

/** One spelling per IPv6 address ([0:0:0:0:0:0:0:1] and [::1] route alike), or undefined when it is not one. */
function canonicalIpv6(bracketed: string): string | undefined {
  try {
    return new URL(`http://${bracketed}/`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * Host header → lowercase host and port. IPv6 literals keep their brackets ("[::1]"); a trailing dot
 * is dropped so "app.example.com." routes like "app.example.com". Undefined when malformed.
 */
export function parseHost(value: string, defaultPort: number): { host: string; port: number } | undefined {
  let host: string;
  let portText: string | undefined;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return undefined;
    host = value.slice(0, end + 1);
    const rest = value.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host)) return undefined;
    const canonical = canonicalIpv6(host);
    if (canonical === undefined) return undefined;
    host = canonical;
  } else {
    const colon = value.indexOf(':');
    host = colon === -1 ? value : value.slice(0, colon);
    portText = colon === -1 ? undefined : value.slice(colon + 1);
    if (!/^[A-Za-z0-9._-]{1,253}$/.test(host)) return undefined;
    if (host.endsWith('.')) host = host.slice(0, -1);
  }
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  return { host: host.toLowerCase(), port };
}

/**
 * parseHost behind a small memo: a deployment serves a handful of Host values, and parsing one (two regular
 * expressions, a lowercase copy, an object) is a measurable share of the hot path. Bounded because Host is
 * client-controlled: past `limit` distinct values the memo starts over. Malformed values are not kept.
 */
export function createHostParser(limit = 256): (value: string, defaultPort: number) => { host: string; port: number } | undefined {
  const memo = [new Map<string, { host: string; port: number }>(), new Map<string, { host: string; port: number }>()];
  return (value, defaultPort) => {
    const map = memo[defaultPort === 443 ? 1 : 0] as Map<string, { host: string; port: number }>;
    const hit = map.get(value);
    if (hit !== undefined) return hit;
    const parsed = parseHost(value, defaultPort);
    if (parsed === undefined) return undefined;
    if (map.size >= limit) map.clear();
    map.set(value, Object.freeze(parsed));
    return parsed;
  };
}
