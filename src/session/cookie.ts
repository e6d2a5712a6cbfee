/**
 * The one cookie Gatehouse reads, found without parsing the whole header:
 * the hot path needs only our value, and a hostile Cookie header must not cost more than a scan.
 * When the name appears twice (a sibling subdomain can plant a second one), the first wins, as browsers
 * send the most specific path first and __Host- cookies cannot be planted by other hosts.
 */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(';', start);
    if (end === -1) end = text.length;
    let i = start;
    while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
    if (text.startsWith(name, i) && text.charCodeAt(i + name.length) === 61 /* = */) {
      let value = text.slice(i + name.length + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
    start = end + 1;
  }
  return undefined;
}

/** The Cookie header with `name` removed (what a backend sees: never Gatehouse's own cookies). Undefined when nothing is left. */
export function removeCookies(header: string, names: readonly string[]): string | undefined {
  const kept: string[] = [];
  for (const part of header.split(';')) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    const name = eq === -1 ? trimmed : trimmed.slice(0, eq);
    if (!names.includes(name)) kept.push(trimmed);
  }
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/**
 * The login-binding cookie (ties a pending login to the browser that started it). Named here once:
 * the auth routes set it and the proxy strips it from what backends see.
 */
export function loginBindingCookieName(secure: boolean): string {
  return secure ? '__Host-gh_login' : 'gh_login';
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

export function clearCookie(name: string, attrs: CookieAttributes): string {
  return `${serializeCookie(name, '', attrs, 0)}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`;
}
