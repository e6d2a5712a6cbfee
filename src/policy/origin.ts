/**
 * Exact-origin allowlist, compiled once: the Gatehouse origin itself plus configured origins.
 * Whole-origin comparison, so `https://app.example.com.evil.example`, `null` and scheme downgrades never pass.
 */
export interface OriginPolicy {
  isAllowed(origin: string | undefined): boolean;
}

export function compileOriginPolicy(selfOrigin: string, allowed: readonly string[]): OriginPolicy {
  const set = new Set([selfOrigin.toLowerCase(), ...allowed.map((o) => o.toLowerCase())]);
  return {
    isAllowed: (origin) => origin !== undefined && set.has(origin.toLowerCase()),
  };
}

/**
 * Cross-site check for state-changing requests to Gatehouse's own endpoints (logout, admin from a browser):
 * a browser-sent Origin must be allowed, and Sec-Fetch-Site must not say cross-site.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html
 */
export function isCrossSiteRequest(policy: OriginPolicy, origin: string | undefined, secFetchSite: string | undefined): boolean {
  if (secFetchSite === 'cross-site') return true;
  if (origin !== undefined && !policy.isAllowed(origin)) return true;
  return false;
}
