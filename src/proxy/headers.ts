import type { IdentityHeaderEncoding } from '../config/types.ts';
import type { Logger } from '../observability/logger.ts';
import { isEmailVerified } from '../policy/claims.ts';
import type { Route } from '../policy/route-table.ts';
import type { PolicyRuntime } from '../policy/runtime.ts';
import type { ClientFacts } from '../policy/trust-proxy.ts';
import { removeCookies } from '../session/cookie.ts';
import { listTokens } from './upstream/grammar.ts';

/** Hop-by-hop fields (RFC 9110 §7.6.1, and the legacy ones proxies still meet): one connection's, never relayed. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'http2-settings',
];

/** Never forwarded from the client: hop-by-hop, forwarding facts Gatehouse sets itself, and routing overrides. */
const ALWAYS_DROPPED = new Set([
  ...HOP_BY_HOP,
  'proxy-authorization',
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-forwarded-server',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  // Method overrides would let a GET become a DELETE behind every method-based check (OWASP WSTG).
  'x-http-method-override',
  'x-method-override',
  'x-http-method',
]);

const RESPONSE_DROPPED = new Set(HOP_BY_HOP);

const SAFE_VALUE = /^[\x20-\x7e\t]*$/;
const CONTENT_LENGTH = /^\d{1,15}$/;
const CHUNKED = /^[ \t]*chunked[ \t]*$/i;
const FRAMING_OR_ROUTING = new Set(['content-length', 'transfer-encoding', 'host']);

/** The facts about the incoming request that routing, auth and forwarding need, from one pass over rawHeaders. */
export interface IncomingFacts {
  host: string | undefined;
  hostCount: number;
  cookie: string | undefined;
  origin: string | undefined;
  referer: string | undefined;
  secFetchSite: string | undefined;
  /** Access-Control-Request-Method: with Origin on an OPTIONS, a CORS preflight. */
  acrMethod: string | undefined;
  authorization: string | undefined;
  requestId: string | undefined;
  xff: string | undefined;
  xfProto: string | undefined;
  xfHost: string | undefined;
  upgrade: string | undefined;
  /**
   * What the body is, as Node framed it: none, a Content-Length, or chunked (its length unknown until it
   * ends). The upstream client writes the framing headers from this; the client's own never pass.
   */
  framing: 'none' | 'chunked' | number;
  /**
   * Why this request is refused before anything else (400, connection closed), when it is: a framing a
   * proxy in front may have read differently, or a Connection header naming what frames or routes it.
   */
  refusal: string | undefined;
  /** Headers the client may pass on, as a flat [name, value, ...] list, before per-route filtering. */
  passable: string[];
  /** Lowercase names listed in the client's Connection header. */
  connectionTokens: string[] | undefined;
}

function isIdentityLike(lower: string): boolean {
  // Underscore variants (X_User_Email) reach the same variable in CGI/WSGI backends, so they are identity headers too.
  return (
    lower.startsWith('x-user-') || lower.startsWith('x_user') || (lower.includes('_') && lower.replace(/_/g, '-').startsWith('x-user-'))
  );
}

export function scanHeaders(raw: readonly string[]): IncomingFacts {
  const facts: IncomingFacts = {
    host: undefined,
    hostCount: 0,
    cookie: undefined,
    origin: undefined,
    referer: undefined,
    secFetchSite: undefined,
    acrMethod: undefined,
    authorization: undefined,
    requestId: undefined,
    xff: undefined,
    xfProto: undefined,
    xfHost: undefined,
    upgrade: undefined,
    framing: 'none',
    refusal: undefined,
    passable: [],
    connectionTokens: undefined,
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        facts.host = value;
        facts.hostCount++;
        continue;
      case 'cookie':
        facts.cookie = facts.cookie === undefined ? value : `${facts.cookie}; ${value}`;
        continue;
      case 'authorization':
        facts.authorization = value;
        continue;
      case 'origin':
        // Two Origin lines are no browser's: joined, they match no allowed origin.
        facts.origin = facts.origin === undefined ? value : `${facts.origin}, ${value}`;
        break;
      case 'referer':
        facts.referer = value;
        break;
      case 'sec-fetch-site':
        facts.secFetchSite = value;
        break;
      case 'access-control-request-method':
        facts.acrMethod = value;
        break;
      case 'x-request-id':
        facts.requestId = value;
        continue;
      case 'x-forwarded-for':
        facts.xff = facts.xff === undefined ? value : `${facts.xff}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        facts.xfProto = value;
        continue;
      case 'x-forwarded-host':
        facts.xfHost = value;
        continue;
      case 'upgrade':
        facts.upgrade = value;
        continue;
      case 'transfer-encoding':
        // RFC 9112 §6.3: Node accepts "identity" + "chunked" on two lines as chunked; a front end that
        // stops at the first line frames the body differently (request smuggling), so only one `chunked` passes.
        // A second Transfer-Encoding line, or one after Content-Length, finds the framing already set.
        if (facts.framing !== 'none' || !CHUNKED.test(value)) facts.refusal ??= 'ambiguous Transfer-Encoding';
        facts.framing = 'chunked';
        continue;
      case 'content-length':
        // Node has refused a malformed or conflicting Content-Length already; this holds without it too.
        if (facts.framing !== 'none' || !CONTENT_LENGTH.test(value)) facts.refusal ??= 'ambiguous Content-Length';
        else facts.framing = Number(value);
        continue;
      case 'connection': {
        for (const token of listTokens(value)) {
          if (token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
          // Naming what frames or routes the message asks a hop to drop it: only request smuggling wants that
          // (RFC 9110 §7.6.1 lists no such field as hop-by-hop).
          if (FRAMING_OR_ROUTING.has(token)) facts.refusal ??= `Connection names ${token}`;
          (facts.connectionTokens ??= []).push(token);
        }
        continue;
      }
      default:
        if (ALWAYS_DROPPED.has(lower) || isIdentityLike(lower)) continue;
    }
    facts.passable.push(name, value);
  }
  return facts;
}

/** The Cookie header a backend gets: the client's, minus Gatehouse's own cookies. */
export function upstreamCookie(rt: PolicyRuntime, cookie: string | undefined): string | undefined {
  if (cookie === undefined || !rt.ownCookies.some((n) => cookie.includes(n))) return cookie;
  return removeCookies(cookie, rt.ownCookies);
}

export interface UpstreamIdentity {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly accessToken: string | undefined;
}

function claimHeaderValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return value.join(',');
  return undefined;
}

// Characters RFC 8187 §3.2.1 leaves as they are (attr-char); percent-encoding keeps RFC 3986's unreserved set.
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const RFC8187_PREFIX = /^utf-8''/i;

function percentEncode(value: string, keep: RegExp): string {
  let out = '';
  // Buffer.from writes a lone surrogate as U+FFFD instead of throwing as encodeURIComponent would.
  for (const byte of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A claim value as a header value, or undefined when it cannot be one. Printable ASCII passes as it is, unless it
 * could be read as an encoded value (so a backend that decodes never turns a name "100%41" into "100A"); other
 * text is encoded, never dropped; control characters (header injection) are never sent.
 * @see https://www.rfc-editor.org/rfc/rfc8187#section-3.2.1
 */
export function encodeIdentityValue(value: string, encoding: IdentityHeaderEncoding): string | undefined {
  if (CONTROL.test(value)) return undefined;
  if (encoding === 'rfc8187') {
    if (SAFE_VALUE.test(value) && !RFC8187_PREFIX.test(value)) return value;
    return `UTF-8''${percentEncode(value, ATTR_CHAR)}`;
  }
  if (SAFE_VALUE.test(value) && !value.includes('%')) return value;
  return percentEncode(value, UNRESERVED);
}

/**
 * What Gatehouse tells the backend about the caller, as a flat [name, value, ...] list: the access token
 * (when the route relays it) and the route's identity headers. Headers mapped from `email` need the IdP's
 * `email_verified: true` unless the route opts out; values that are not printable ASCII are encoded as the route
 * says (encodeIdentityValue); values that cannot be header values are dropped and logged, never forwarded raw.
 */
export function identityHeaderLines(route: Route, identity: UpstreamIdentity, requestId: string, log: Logger): string[] {
  const out: string[] = [];
  if (route.forwardAccessToken && identity.accessToken) {
    // The upstream client writes values as they are: a token is checked like any value Gatehouse adds.
    if (SAFE_VALUE.test(identity.accessToken)) out.push('authorization', `Bearer ${identity.accessToken}`);
    else log.warn({ reqId: requestId }, 'access token is not a safe header value; not forwarded');
  }
  for (const [header, claim] of route.identityHeaders) {
    // An address the IdP has not verified may belong to someone else: never an identity a backend trusts.
    if (claim === 'email' && !route.sendUnverifiedEmail && !isEmailVerified(identity.claims)) continue;
    const raw = claimHeaderValue(identity.claims[claim]);
    if (raw === undefined) continue;
    const value = encodeIdentityValue(raw, route.identityHeaderEncoding);
    if (value === undefined || value.length > 4096) {
      log.warn({ reqId: requestId, header, claim }, 'claim value is not a safe header value; header dropped');
      continue;
    }
    out.push(header, value);
  }
  return out;
}

/**
 * identityHeaderLines, remembered per identity object for its last route: a cached session yields the same
 * Principal object on every request, so the hot path builds these lines once per session and route.
 */
export function createIdentityLinesMemo(log: Logger): (route: Route, identity: UpstreamIdentity, requestId: string) => readonly string[] {
  const memo = new WeakMap<UpstreamIdentity, { route: Route; lines: readonly string[] }>();
  return (route, identity, requestId) => {
    const hit = memo.get(identity);
    if (hit && hit.route === route) return hit.lines;
    const lines = identityHeaderLines(route, identity, requestId, log);
    memo.set(identity, { route, lines });
    return lines;
  };
}

/**
 * The header list the backend receives. Client-named Connection headers are removed first, then
 * Gatehouse's own headers are added, so `Connection: x-user-email, authorization` cannot strip what
 * Gatehouse injects (Fabio CVE-2025-48865). `identityLines` comes from identityHeaderLines when there is
 * an identity; without one, the client's Authorization header is passed on only where the route says so.
 */
export function buildUpstreamHeaders(
  facts: IncomingFacts,
  route: Route,
  identityLines: readonly string[] | undefined,
  client: ClientFacts,
  hostHeader: string,
  requestId: string,
  cookie: string | undefined,
): string[] {
  const out: string[] = [];
  const p = facts.passable;
  const custom = route.extraStrip.length > 0;
  for (let i = 0; i < p.length; i += 2) {
    const name = p[i] as string;
    if (facts.connectionTokens || custom) {
      const lower = name.toLowerCase();
      if (facts.connectionTokens?.includes(lower)) continue;
      // X_Roles reaches a CGI/WSGI backend as the same variable as X-Roles: strip both spellings.
      if (custom && route.extraStrip.includes(lower.includes('_') ? lower.replace(/_/g, '-') : lower)) continue;
    }
    out.push(name, p[i + 1] as string);
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  out.push(
    'x-forwarded-for',
    client.forwardedFor,
    'x-forwarded-proto',
    client.proto,
    'x-forwarded-host',
    client.forwardedHost ?? hostHeader,
    'x-request-id',
    requestId,
  );
  if (identityLines) {
    for (let i = 0; i < identityLines.length; i++) out.push(identityLines[i] as string);
  } else if (facts.authorization !== undefined && route.passAuthorization) {
    out.push('authorization', facts.authorization);
  }
  return out;
}

/** A backend must never set (and so plant or overwrite) Gatehouse's session or login cookie. */
export function setsOwnCookie(setCookie: string, ownCookies: readonly string[]): boolean {
  if (ownCookies.length === 0) return false;
  const name = setCookie.slice(0, setCookie.indexOf('=')).trim().toLowerCase();
  return ownCookies.some((c) => c.toLowerCase() === name);
}

/**
 * Response headers the client receives, as a flat [name, value, ...] list: the backend's (`headers`, names
 * lowercase), minus hop-by-hop and whatever its Connection header names (`connectionTokens`), plus `extra`.
 * A flat list goes to writeHead as it is (no per-header setHeader bookkeeping on the hot path).
 */
export function filterResponseHeaders(
  headers: readonly string[],
  connectionTokens: readonly string[],
  extra: readonly string[] = [],
  ownCookies: readonly string[] = [],
): string[] {
  const out: string[] = [];
  const named = connectionTokens.length > 0;
  for (let i = 0; i < headers.length; i += 2) {
    const key = headers[i] as string;
    const value = headers[i + 1] as string;
    if (RESPONSE_DROPPED.has(key) || (named && connectionTokens.includes(key))) continue;
    // CORS on /api is Gatehouse's answer alone: a backend's `Access-Control-Allow-Origin: *` (or a reflected
    // Origin) would undo the allowlist.
    if (key.startsWith('access-control-')) continue;
    if (key === 'set-cookie' && setsOwnCookie(value, ownCookies)) continue;
    out.push(key, value);
  }
  for (const v of extra) out.push(v);
  return out;
}

/** A node:http header object as the flat lowercase list filterResponseHeaders takes, with its Connection tokens. */
export function flattenHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): {
  headers: string[];
  connectionTokens: string[];
} {
  const out: string[] = [];
  for (const key in headers) {
    const value = headers[key];
    if (value === undefined) continue;
    if (typeof value === 'string') out.push(key, value);
    else for (const v of value) out.push(key, v);
  }
  const connection = headers['connection'];
  return { headers: out, connectionTokens: typeof connection === 'string' ? listTokens(connection) : [] };
}
