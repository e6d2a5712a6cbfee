import { parseSessionSecret, secretText, type SessionSecret } from './crypto.ts';

/**
 * readCookie's answer when the name appears more than once. A sibling subdomain (anything that can set a
 * cookie for a parent domain) can plant a second cookie with our name and a more specific Path, which the
 * browser then sends first ("cookie tossing", OWASP Session Management Cheat Sheet): no copy can be trusted
 * to be ours, so callers must treat this as "no cookie", never pick one.
 */
export const DUPLICATE_COOKIE: unique symbol = Symbol('duplicate cookie');

/** Absent, the one value, or DUPLICATE_COOKIE: a union, so every caller has to decide what a duplicate means. */
export type CookieRead = string | undefined | typeof DUPLICATE_COOKIE;

/**
 * The one cookie Gatehouse reads, found without parsing the whole header: the hot path needs only our
 * value, and a hostile Cookie header must not cost more than one scan (and one slice for the value).
 * Names match byte for byte: only SP and HTAB around a cookie-pair are optional whitespace, so
 * `\u00a0name=`, `name\u3000=`, a percent-encoded or differently cased name is some other cookie.
 * @see https://datatracker.ietf.org/doc/html/draft-ietf-httpbis-rfc6265bis (§4.2.1 the cookie-string grammar; §5.4 the Cookie header)
 */
export function readCookie(header: string | string[] | undefined, name: string): CookieRead {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  let found: string | undefined;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end === -1) end = text.length;
    let i = start;
    while (i < end && isOws(text.charCodeAt(i))) i++;
    if (text.startsWith(name, i) && text.charCodeAt(i + name.length) === 61 /* = */) {
      if (found !== undefined) return DUPLICATE_COOKIE;
      let from = i + name.length + 1;
      let to = end;
      while (from < to && isOws(text.charCodeAt(from))) from++;
      while (to > from && isOws(text.charCodeAt(to - 1))) to--;
      if (to - from >= 2 && text.charCodeAt(from) === 34 /* " */ && text.charCodeAt(to - 1) === 34) {
        from++;
        to--;
      }
      found = text.slice(from, to);
    }
    start = end + 1;
  }
  return found;
}

/**
 * The session cookie, as the secret it carries: undefined when absent or not shaped like a secret Gatehouse
 * issues (such a value never reaches the store), DUPLICATE_COOKIE when sent more than once.
 */
export function readSessionCookie(
  header: string | string[] | undefined,
  name: string,
): SessionSecret | undefined | typeof DUPLICATE_COOKIE {
  const read = readCookie(header, name);
  return read === DUPLICATE_COOKIE ? read : parseSessionSecret(read);
}

function isOws(code: number): boolean {
  return code === 32 || code === 9;
}

/**
 * The Cookie header with each of `names` removed, and with the names' per-login variants `name.<slot>` (what a
 * backend sees: never Gatehouse's own cookies). Undefined when nothing is left.
 */
export function removeCookies(header: string, names: readonly string[]): string | undefined {
  const kept: string[] = [];
  for (const part of header.split(';')) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    // Wider than readCookie on purpose: `name =x` is not our cookie to read, but a backend's parser that trims
    // names (as the npm `cookie` package does) would read it as ours, so it does not pass either.
    const name = (eq === -1 ? trimmed : trimmed.slice(0, eq)).trim();
    if (!names.some((own) => name === own || (name.startsWith(own) && name.charCodeAt(own.length) === 46) /* . */)) kept.push(trimmed);
  }
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/**
 * The login-binding cookies' common name (each ties one pending login to the browser that started it, and is
 * called `<name>.<slot>`, see loginBindingCookie). Named here once: the auth routes set them and the proxy strips
 * them from what backends see.
 */
export function loginBindingCookieName(secure: boolean): string {
  return secure ? '__Host-gh_login' : 'gh_login';
}

/** The binding cookie of one login: its own name, so logins in two tabs never share (or clear) one cookie. */
export function loginBindingCookie(secure: boolean, slot: string): string {
  return `${loginBindingCookieName(secure)}.${slot}`;
}

/** The names in a Cookie header that start with `prefix`, in the order the browser sent them (oldest first). */
export function cookieNamesStartingWith(header: string | string[] | undefined, prefix: string): string[] {
  if (header === undefined) return [];
  const out: string[] = [];
  for (const part of (Array.isArray(header) ? header.join('; ') : header).split(';')) {
    const trimmed = part.replace(/^[ \t]+/, '');
    const eq = trimmed.indexOf('=');
    if (eq > 0 && trimmed.startsWith(prefix)) out.push(trimmed.slice(0, eq));
  }
  return out;
}

export interface CookieAttributes {
  readonly secure: boolean;
  readonly sameSite: 'Strict' | 'Lax' | 'None';
  readonly domain?: string;
}

export function serializeCookie(name: string, value: string, attrs: CookieAttributes, maxAgeSeconds: number): string {
  let out = `${name}=${value}; Path=/; HttpOnly; SameSite=${attrs.sameSite}; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`;
  if (attrs.secure) out += '; Secure';
  if (attrs.domain) out += `; Domain=${attrs.domain}`;
  return out;
}

/** The Set-Cookie value that hands the browser its session secret. */
export function serializeSessionCookie(name: string, secret: SessionSecret, attrs: CookieAttributes, maxAgeSeconds: number): string {
  return serializeCookie(name, secretText(secret), attrs, maxAgeSeconds);
}

export function clearCookie(name: string, attrs: CookieAttributes): string {
  return `${serializeCookie(name, '', attrs, 0)}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`;
}

/**
 * The Set-Cookie values that clear the session cookie after a duplicate was seen: the host-only one, and,
 * when the cookie is shared with subdomains (SESSION_COOKIE_DOMAIN), the Domain one too. A clearing cookie
 * only replaces a cookie with the same name, domain, host-only flag and path (RFC 6265bis, "Storage Model"):
 * it cannot remove a copy planted with another Path or for another Domain, which stays until it expires.
 * Such a browser keeps sending two copies and keeps getting no session, which is the point: never the planted one.
 * @see https://datatracker.ietf.org/doc/html/draft-ietf-httpbis-rfc6265bis (Storage Model)
 */
export function clearingCookies(name: string, attrs: CookieAttributes): string[] {
  const hostOnly = clearCookie(name, { secure: attrs.secure, sameSite: attrs.sameSite });
  return attrs.domain ? [hostOnly, clearCookie(name, attrs)] : [hostOnly];
}

/** clearingCookies as a flat [name, value, ...] header list, the form error and proxied responses carry. */
export function clearingHeaders(name: string, attrs: CookieAttributes): string[] {
  return clearingCookies(name, attrs).flatMap((value) => ['set-cookie', value]);
}
