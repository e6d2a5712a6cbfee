/**
 * The CSRF check for cookie-carrying unsafe requests on /api (OWASP CSRF cheat sheet: "Verifying Origin with
 * standard headers", "Fetch Metadata headers", "Custom request headers"; draft-ietf-oauth-browser-based-apps
 * §6.1.3.3). Pure: facts in, a refusal reason (for the log) or undefined out.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html
 */
export interface CsrfPolicy {
  /** The header every checked request must carry (lowercase name, exact value), or none. */
  readonly header: { readonly name: string; readonly lower: string; readonly value: string } | undefined;
  /** Requests with neither Origin nor Referer pass (the opt-out, named after its risk). */
  readonly allowMissingOrigin: boolean;
}

export interface CsrfFacts {
  readonly origin: string | undefined;
  readonly referer: string | undefined;
  readonly secFetchSite: string | undefined;
  /** The client's headers as a flat [name, value, ...] list, where the required header is looked for. */
  readonly passable: readonly string[];
}

/** POST, PUT, PATCH, DELETE: what a cross-site page can make a browser send with its cookies and that changes state. */
export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A `_method` query parameter as a backend's query parser reads it: its name percent-decoded (`%5Fmethod`), with or
 * without a value, or as a list (`_method[]=`, `_method%5B%5D=`), after `&` or the `;` older Rack splits on too.
 * One pattern for the CSRF check and the route-rule refusal (admit.ts), so no spelling passes one that the other catches.
 */
export const QUERY_METHOD_OVERRIDE = /[?&;](?:_|%5f)method(?:[=&;[]|%5b|$)/i;

/**
 * A query that names `_method` (Rails, Laravel, method-override): some frameworks turn a request carrying it into
 * a DELETE, so it is checked as an unsafe request whatever its method (catalogue #65, OWASP WSTG method overriding).
 */
export function overridesMethod(query: string): boolean {
  return query.length > 1 && QUERY_METHOD_OVERRIDE.test(query);
}

function originOfReferer(referer: string): string | undefined {
  // A Referer that does not parse, or parses to an opaque origin, names no origin that could be allowed.
  if (!URL.canParse(referer)) return undefined;
  const origin = new URL(referer).origin;
  return origin === 'null' ? undefined : origin;
}

/**
 * Why a checked request is refused, or undefined when it passes. `allowed` is the whole-origin allowlist
 * (Gatehouse's own origin and the mapping's CORS origins): `https://app.example.com.evil.example`, a scheme
 * downgrade and `null` never pass.
 */
export function csrfRefusal(policy: CsrfPolicy, allowed: (origin: string) => boolean, facts: CsrfFacts): string | undefined {
  // Fetch Metadata: browsers set it and pages cannot. A cross-site request is refused whatever it claims.
  if (facts.secFetchSite === 'cross-site') return 'Sec-Fetch-Site: cross-site';
  let source: string | undefined;
  if (facts.origin !== undefined) {
    // `Origin: null` comes from sandboxed iframes, data: URLs and some redirects: an attacker can produce it at will.
    if (facts.origin === 'null') return 'Origin: null';
    source = facts.origin;
  } else if (facts.referer !== undefined) {
    source = originOfReferer(facts.referer);
    if (source === undefined) return 'Referer names no origin';
  }
  if (source === undefined) {
    if (!policy.allowMissingOrigin || facts.secFetchSite === 'same-site') return 'neither Origin nor Referer';
  } else if (!allowed(source)) {
    return `origin ${source.slice(0, 100)} not allowed`;
  }
  if (policy.header !== undefined && headerValue(facts.passable, policy.header.lower) !== policy.header.value) {
    return `${policy.header.name} header missing or wrong`;
  }
  return undefined;
}

function headerValue(list: readonly string[], lower: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < list.length; i += 2) {
    if ((list[i] as string).toLowerCase() !== lower) continue;
    // Sent twice is not the one value a page set through fetch(): refused like a wrong value.
    if (found !== undefined) return undefined;
    found = list[i + 1] as string;
  }
  return found;
}
