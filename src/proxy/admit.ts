import { GatehouseError } from '../errors.ts';
import type { IdentityResolver, Principal } from '../auth/identity.ts';
import type { ClientFacts } from '../policy/trust-proxy.ts';
import { clearingHeaders, DUPLICATE_COOKIE, readSessionCookie, removeCookies } from '../session/cookie.ts';
import type { SessionSecret } from '../session/crypto.ts';
import type { IncomingFacts } from './headers.ts';
import { splitApiTarget } from './path.ts';
import type { Route } from './routes.ts';
import type { Runtime } from './runtime.ts';

export interface Admission {
  readonly route: Route;
  readonly path: string;
  readonly query: string;
  readonly client: ClientFacts;
  readonly hostHeader: string;
  readonly principal: Principal | undefined;
  /**
   * Headers the client's response carries whatever the backend answers ([name, value, ...]): the clearing
   * Set-Cookie after a duplicated session cookie. Undefined on every ordinary request.
   */
  readonly responseHeaders: readonly string[] | undefined;
}

const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

/**
 * The one admission policy for /api, called by the HTTP path and the WebSocket upgrade path alike:
 * host and path hygiene, routing, then the route's auth policy. Throws coded errors (synchronously,
 * or through the returned promise). Answers synchronously when the identity is in this process's caches:
 * the common case costs no await at all.
 */
export function admit(
  rt: Runtime,
  identity: IdentityResolver,
  facts: IncomingFacts,
  method: string,
  url: string,
  peer: string,
  encrypted: boolean,
): Admission | Promise<Admission> {
  // RFC 9112 §3.2: exactly one Host; two could route on one and be served by another.
  if (facts.hostCount !== 1 || facts.host === undefined) throw new GatehouseError('invalid_host');
  if (REFUSED_METHODS.has(method)) throw new GatehouseError('method_not_allowed');
  const target = splitApiTarget(url);
  if (!target) throw new GatehouseError('invalid_path', { logDetail: 'rejected path' });
  const client = rt.trust(peer, facts.xff, facts.xfProto, facts.xfHost, encrypted);
  const host = rt.hosts(client.forwardedHost ?? facts.host, client.proto === 'https' ? 443 : 80);
  if (!host) throw new GatehouseError('invalid_host');
  const route = rt.routes.resolve(host.host, host.port, target.path);
  if (!route) throw new GatehouseError('not_found', { logDetail: `no mapping for ${host.host}:${host.port}` });
  const hostHeader = facts.host;
  let responseHeaders: readonly string[] | undefined;
  const finish = (principal: Principal | undefined): Admission => {
    if (!principal && route.auth === 'required') throw new GatehouseError('unauthorized', responseHeaders ? { headers: responseHeaders, logDetail: 'session cookie sent more than once' } : {});
    return { route, path: target.path, query: target.query, client, hostHeader, principal, responseHeaders };
  };
  if (route.auth === 'none') return finish(undefined);
  const read = readSessionCookie(facts.cookie, rt.config.session.cookieName);
  let cookie: SessionSecret | undefined;
  if (read === DUPLICATE_COOKIE) {
    // Cookie tossing (OWASP Session Management): a second copy may have been planted by a sibling subdomain
    // with a more specific Path, and which one comes first is the attacker's choice. Neither is used; the
    // browser is told to drop the ones we can reach (see clearingCookies for what this cannot remove).
    responseHeaders = clearingHeaders(rt.config.session.cookieName, rt.config.session);
  } else {
    cookie = read;
  }
  const cached = identity.resolveCached(cookie, facts.authorization);
  if (cached !== null) return finish(cached);
  return identity.resolve(cookie, facts.authorization, route.auth).then(finish);
}

/** The Cookie header a backend gets: the client's, minus Gatehouse's own cookies. */
export function upstreamCookie(rt: Runtime, cookie: string | undefined): string | undefined {
  if (cookie === undefined || !rt.ownCookies.some((n) => cookie.includes(n))) return cookie;
  return removeCookies(cookie, rt.ownCookies);
}
