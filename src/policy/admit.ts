import { GatehouseError } from '../errors.ts';
import type { IdentityResolver, Principal } from '../auth/identity.ts';
import { clearingHeaders, DUPLICATE_COOKIE, readSessionCookie } from '../session/cookie.ts';
import type { SessionSecret } from '../session/crypto.ts';
import { csrfRefusal, overridesMethod, UNSAFE_METHODS } from './csrf.ts';
import type { EdgePolicy } from './edge.ts';
import { firstEntry } from './path-pattern.ts';
import { MAX_URL_LENGTH, splitApiTarget } from './path.ts';
import { clientKey, principalKey, type RateLimiter } from './rate-limit.ts';
import type { Route, RouteRule } from './route-table.ts';
import type { PolicyRuntime } from './runtime.ts';
import { admitSchema, type SchemaCheck } from './schemas.ts';
import type { ClientFacts } from './trust-proxy.ts';

/** Who is calling, as the adapters see it: proxy/ learns about identities through policy/, never from auth/. */
export type { Principal };

/** What admission reads from the request's headers (proxy/headers.ts scanHeaders collects them in its one pass). */
export interface AdmissionFacts {
  readonly host: string | undefined;
  readonly hostCount: number;
  readonly cookie: string | undefined;
  readonly authorization: string | undefined;
  readonly xff: string | undefined;
  readonly xfProto: string | undefined;
  readonly xfHost: string | undefined;
  readonly origin: string | undefined;
  readonly referer: string | undefined;
  readonly secFetchSite: string | undefined;
  readonly acrMethod: string | undefined;
  /** The Upgrade header: set on a WebSocket handshake, whose Origin is checked before anything else of the route. */
  readonly upgrade: string | undefined;
  /** The client's other headers, [name, value, ...] (the CSRF header is looked for here). */
  readonly passable: readonly string[];
}

export interface Admission {
  readonly route: Route;
  /** The mapping's first rule matching the method and path (undefined: the mapping's own settings apply). */
  readonly rule: RouteRule | undefined;
  readonly path: string;
  readonly query: string;
  readonly client: ClientFacts;
  readonly hostHeader: string;
  readonly principal: Principal | undefined;
  /** The session cookie's value when the principal came from it (a WebSocket rolls that session's idle timeout). */
  readonly sessionSecret: SessionSecret | undefined;
  /**
   * Headers the client's response carries whatever the backend answers ([name, value, ...]): the clearing
   * Set-Cookie after a duplicated session cookie, the mapping's CORS headers. Undefined when there are none.
   */
  readonly responseHeaders: readonly string[] | undefined;
  /** The `schemas` entry this request matched (its query already checked): the HTTP adapter checks its body. */
  readonly schema: SchemaCheck | undefined;
  /**
   * Answered at the edge, never forwarded: a CORS preflight from an allowed origin (204 and these headers).
   * Undefined on every request to forward.
   */
  readonly answer: { readonly status: number; readonly headers: readonly string[] } | undefined;
}

/** The same error with `headers` added to the ones its answer carries (CORS headers on a refusal the page must read). */
function withHeaders(err: unknown, headers: readonly string[]): never {
  if (!(err instanceof GatehouseError)) throw err;
  throw err.extend({ headers });
}

/** Gatehouse's own origin, or one the mapping's CORS list allows: whole origins, ASCII case-insensitive. */
function originAllowed(self: string, edge: EdgePolicy, origin: string): boolean {
  return origin === self || origin.toLowerCase() === self || edge.cors.allows(origin);
}

function joined(a: readonly string[] | undefined, b: readonly string[] | undefined): readonly string[] | undefined {
  return a === undefined ? b : b === undefined ? a : [...a, ...b];
}

const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

/**
 * The one admission policy for /api, called by the HTTP path and the WebSocket upgrade path alike:
 * host and path hygiene, routing, the route rule (auth, method allowlist), then identity and the rule's claims. Throws coded errors (synchronously,
 * or through the returned promise). Answers synchronously when the identity is in this process's caches:
 * the common case costs no await at all.
 */
export function admit(
  rt: PolicyRuntime,
  identity: IdentityResolver,
  limiter: RateLimiter,
  facts: AdmissionFacts,
  method: string,
  url: string,
  peer: string,
  encrypted: boolean,
): Admission | Promise<Admission> {
  // RFC 9112 §3.2: exactly one Host; two could route on one and be served by another.
  if (facts.hostCount !== 1 || facts.host === undefined) throw new GatehouseError('invalid_host');
  if (REFUSED_METHODS.has(method)) throw new GatehouseError('method_not_allowed');
  if (url.length > MAX_URL_LENGTH) throw new GatehouseError('uri_too_long', { logDetail: `${url.length} characters` });
  const target = splitApiTarget(url);
  if (!target) throw new GatehouseError('invalid_path', { logDetail: 'rejected path' });
  const client = rt.trust(peer, facts.xff, facts.xfProto, facts.xfHost, encrypted);
  const host = rt.hosts(client.forwardedHost ?? facts.host, client.proto === 'https' ? 443 : 80);
  if (!host) throw new GatehouseError('invalid_host');
  const route = rt.routes.resolve(host.host, host.port, target.path);
  if (!route) {
    // A SPA that calls a path nothing maps should read its 404, not a CORS failure.
    const headers = rt.cors.actual(facts.origin);
    throw new GatehouseError('not_found', { logDetail: `no mapping for ${host.host}:${host.port}`, ...(headers ? { headers } : {}) });
  }
  const hostHeader = facts.host;
  const edge = route.edge;
  const self = rt.config.server.origin;
  // Stage 3, before auth and route rules: a preflight carries no cookies, and is never forwarded.
  if (method === 'OPTIONS' && facts.origin !== undefined && facts.acrMethod !== undefined) {
    const headers = edge.cors.preflight(facts.origin);
    if (!headers) throw new GatehouseError('origin_not_allowed', { headers: ['vary', 'Origin'], logDetail: 'CORS preflight refused' });
    const answer = { status: 204, headers };
    return {
      route,
      rule: undefined,
      path: target.path,
      query: target.query,
      client,
      hostHeader,
      principal: undefined,
      sessionSecret: undefined,
      responseHeaders: undefined,
      schema: undefined,
      answer,
    };
  }
  // Cross-site WebSocket hijacking (CWE-1385): a handshake is a GET, so the Origin itself is the check.
  if (facts.upgrade !== undefined && facts.origin !== undefined && !originAllowed(self, edge, facts.origin))
    throw new GatehouseError('origin_not_allowed', { logDetail: `origin ${facts.origin.slice(0, 100)}` });
  const cors = edge.cors.actual(facts.origin);
  // Stage 4: the rule is chosen on the path routing chose by (case and trailing slash as prefix matching treats them).
  const rule = route.rules.length === 0 ? undefined : firstEntry(route.rules, method, target.path);
  const auth = rule ? rule.auth : route.auth;
  let responseHeaders: readonly string[] | undefined = cors;
  let clearing: readonly string[] | undefined;
  let cookie: SessionSecret | undefined;
  const finish = (principal: Principal | undefined): Admission | Promise<Admission> => {
    if (!principal && (auth === 'required' || rule?.claims))
      throw new GatehouseError('unauthorized', clearing ? { headers: clearing, logDetail: 'session cookie sent more than once' } : {});
    // Stage 5: what the rule asks of the identity, session and bearer callers alike (both carry claims).
    const unmet = principal && rule?.claims?.unmet(principal.claims);
    if (unmet) throw new GatehouseError('forbidden', { logDetail: `${rule?.name}: ${unmet}` });
    const sessionSecret = principal?.kind === 'session' ? cookie : undefined;
    const admitted = (fields: readonly string[] | undefined): Admission => {
      // Stage 7: cookies are what a cross-site page makes a browser send; a bearer token it cannot attach.
      if (facts.cookie !== undefined && principal?.kind !== 'bearer' && (UNSAFE_METHODS.has(method) || overridesMethod(target.query))) {
        const refusal = csrfRefusal(edge.csrf, (origin) => originAllowed(self, edge, origin), facts);
        if (refusal !== undefined) throw new GatehouseError('csrf', { logDetail: refusal, ...(clearing ? { headers: clearing } : {}) });
      }
      return {
        route,
        rule,
        path: target.path,
        query: target.query,
        client,
        hostHeader,
        principal,
        sessionSecret,
        responseHeaders: fields === undefined ? responseHeaders : responseHeaders ? [...responseHeaders, ...fields] : fields,
        // Stage 8: the schema entry (strictSchemas) and the query check; the body is the HTTP adapter's.
        schema: rt.schemas.size === 0 ? undefined : admitSchema(rt.schemas, route, method, target.path, target.query),
        answer: undefined,
      };
    };
    // Stage 6: a matching rule's limit (its own, else the mapping's, compiled into the rule) takes the mapping's place.
    const limit = rule ? rule.rateLimit : route.rateLimit;
    if (limit === undefined) return admitted(undefined);
    // Identified callers are counted by who they are, anonymous ones by address (IPv6 by /64): see rate-limit.ts.
    const fields = limiter.check(limit, principal ? principalKey(principal) : clientKey(client.ip), '-');
    return fields instanceof Promise ? fields.then(admitted) : admitted(fields);
  };
  const rethrow = cors === undefined ? undefined : (err: unknown) => withHeaders(err, cors);
  // Errors from here on carry the CORS headers, whether thrown now or through a promise (a rate limit counted in Redis).
  const guard = (result: Admission | Promise<Admission>) => (rethrow && result instanceof Promise ? result.catch(rethrow) : result);
  try {
    // Override headers are stripped (proxy/headers.ts); a query parameter is the request's own bytes, so where rules
    // or strictSchemas decide by method, a request asking the backend to read another method is refused rather than
    // forwarded (a declared POST must not become an undeclared PUT).
    if ((route.rules.length > 0 || route.strictSchemas) && overridesMethod(target.query))
      throw new GatehouseError('bad_request', { logDetail: 'method override in the query on a mapping with route rules or strictSchemas' });
    if (rule?.methods && !rule.methods.includes(method))
      throw new GatehouseError('method_not_allowed', { headers: ['allow', rule.allow], logDetail: `${rule.name} allows ${rule.allow}` });
    if (auth === 'none') return guard(finish(undefined));
    const read = readSessionCookie(facts.cookie, rt.config.session.cookieName);
    if (read === DUPLICATE_COOKIE) {
      // Cookie tossing (OWASP Session Management): a second copy may have been planted by a sibling subdomain
      // with a more specific Path, and which one comes first is the attacker's choice. Neither is used; the
      // browser is told to drop the ones we can reach (see clearingCookies for what this cannot remove).
      clearing = clearingHeaders(rt.config.session.cookieName, rt.config.session);
      responseHeaders = joined(clearing, cors);
    } else {
      cookie = read;
    }
    const cached = identity.resolveCached(cookie, facts.authorization);
    if (cached !== null) return guard(finish(cached));
  } catch (err) {
    if (rethrow) rethrow(err);
    throw err;
  }
  const pending = identity.resolve(cookie, facts.authorization, auth).then(finish);
  return rethrow ? pending.catch(rethrow) : pending;
}

/** admit() with the identity resolver bound: what the HTTP and WebSocket adapters are given. */
export type Admit = (
  rt: PolicyRuntime,
  facts: AdmissionFacts,
  method: string,
  url: string,
  peer: string,
  encrypted: boolean,
) => Admission | Promise<Admission>;

export function createAdmission(identity: IdentityResolver, limiter: RateLimiter): Admit {
  return (rt, facts, method, url, peer, encrypted) => admit(rt, identity, limiter, facts, method, url, peer, encrypted);
}
