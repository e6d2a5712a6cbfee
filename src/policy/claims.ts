import type { ClaimScalar } from '../config/types.ts';

/** Claims as a principal carries them (ID token + userinfo for a session, the access token for a bearer caller). */
export type Claims = Readonly<Record<string, unknown>>;

/**
 * Whether the IdP vouches for the caller's `email`. Only the boolean `true` counts (OpenID Connect Core §5.1):
 * a missing claim, `false` or the string "true" all mean the address may belong to someone else.
 * @see https://openid.net/specs/openid-connect-core-1_0.html#StandardClaims
 */
export function isEmailVerified(claims: Claims): boolean {
  return claims['email_verified'] === true;
}

/**
 * The domain of a strict `local@domain` address, lowercase, or undefined. Exactly one "@": an address such as
 * `attacker@evil.com@company.com` is not in company.com (oauth2-proxy GHSA-c5c4-8r6x-56w3 took the last "@").
 */
export function emailDomain(email: unknown): string | undefined {
  if (typeof email !== 'string') return undefined;
  const at = email.indexOf('@');
  if (at <= 0 || at !== email.lastIndexOf('@') || at === email.length - 1) return undefined;
  const domain = email.slice(at + 1).toLowerCase();
  return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(domain) ? domain : undefined;
}

/** A rule's `requireClaims` and `emailDomains`, compiled: `unmet` names the first failed requirement (for the log). */
export interface ClaimCheck {
  unmet(claims: Claims): string | undefined;
}

type Requirement = { readonly claim: string; readonly anyOf: readonly ClaimScalar[] };

// RFC 9068 §2.2.3 (and RFC 8693 §4.2): `scope` is one space-separated string, so it is a list like an array claim.
const SPACE_SEPARATED = new Set(['scope']);

function claimHas(value: unknown, wanted: ClaimScalar, spaceSeparated: boolean): boolean {
  if (value === wanted) return true;
  if (Array.isArray(value)) return value.includes(wanted);
  if (spaceSeparated && typeof value === 'string' && typeof wanted === 'string') return value.split(' ').includes(wanted);
  return false;
}

export function compileClaimCheck(
  requireClaims: Readonly<Record<string, ClaimScalar | readonly ClaimScalar[]>> | undefined,
  emailDomains: readonly string[] | undefined,
): ClaimCheck | undefined {
  const requirements: Requirement[] = Object.entries(requireClaims ?? {}).map(([claim, v]) => ({
    claim,
    anyOf: Array.isArray(v) ? (v as readonly ClaimScalar[]) : [v as ClaimScalar],
  }));
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const d of emailDomains ?? []) {
    if (d.startsWith('*.')) suffixes.push(d.slice(1).toLowerCase());
    else exact.add(d.toLowerCase());
  }
  const domains = emailDomains !== undefined && emailDomains.length > 0;
  if (requirements.length === 0 && !domains) return undefined;
  return {
    unmet(claims) {
      for (const r of requirements) {
        // Own claims only: a claim named `constructor` is not Object.prototype's.
        const value = Object.hasOwn(claims, r.claim) ? claims[r.claim] : undefined;
        const spaced = SPACE_SEPARATED.has(r.claim);
        if (!r.anyOf.some((w) => claimHas(value, w, spaced))) return `claim ${r.claim}`;
      }
      if (domains) {
        // An address the IdP has not verified could be anyone's: a domain allowlist must not trust it (catalogue #34).
        if (!isEmailVerified(claims)) return 'email not verified';
        const domain = emailDomain(claims['email']);
        if (domain === undefined) return 'email missing or not a plain address';
        if (!exact.has(domain) && !suffixes.some((s) => domain.endsWith(s))) return 'email domain';
      }
      return undefined;
    },
  };
}
