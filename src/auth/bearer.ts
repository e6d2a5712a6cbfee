import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { GatehouseError } from '../errors.ts';
import type { Blocklist } from '../revocation/blocklist.ts';

export interface BearerPrincipal {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly token: string;
  readonly expiresAt: number;
}

export interface BearerVerifier {
  /** Verifies a bearer JWT; throws unauthorized (with a log detail) for anything that is not a valid, unrevoked token. */
  verify(token: string): Promise<BearerPrincipal>;
}

const SAFE_ID = /^[\x21-\x7e]{1,255}$/;

/**
 * Bearer access tokens for non-browser clients: signature against the issuer's JWKS, an algorithm
 * allowlist (asymmetric only: never `none`, never HMAC keyed with a public key), `iss`, `aud`,
 * `exp`/`nbf` with a small leeway, and the revocation blocklist. Verified tokens are cached until
 * they expire (bounded), revocation is still checked on every use.
 * @see https://www.rfc-editor.org/rfc/rfc9068
 */
export function createBearerVerifier(deps: {
  keys: () => JWTVerifyGetKey;
  issuer: string;
  audience: string;
  algorithms: readonly string[];
  clockToleranceSeconds: number;
  blocklist: Blocklist;
  now?: () => number;
  cacheMaxEntries?: number;
}): BearerVerifier {
  const now = deps.now ?? Date.now;
  const cache = new Map<string, BearerPrincipal>();
  const max = deps.cacheMaxEntries ?? 10_000;
  const refuse = (detail: string, cause?: unknown) => new GatehouseError('unauthorized', { logDetail: `bearer token: ${detail}`, cause });

  async function verifySignature(token: string): Promise<BearerPrincipal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, deps.keys(), {
        issuer: deps.issuer,
        audience: deps.audience,
        algorithms: [...deps.algorithms],
        clockTolerance: deps.clockToleranceSeconds,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(now()),
      }));
    } catch (err) {
      if (err instanceof GatehouseError) throw err;
      throw refuse((err as { code?: string }).code ?? 'invalid', err);
    }
    return { claims: payload as Record<string, unknown>, token, expiresAt: (payload.exp as number) * 1000 };
  }

  return {
    async verify(token) {
      if (token.length > 16_384 || token.split('.').length !== 3) throw refuse('not a JWT');
      let principal = cache.get(token);
      if (principal && principal.expiresAt + deps.clockToleranceSeconds * 1000 <= now()) {
        cache.delete(token);
        principal = undefined;
      }
      if (!principal) {
        principal = await verifySignature(token);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(token, principal);
      }
      const { jti, sub, iat } = principal.claims;
      if (jti !== undefined) {
        // A jti the blocklist cannot key safely is refused: skipping the check would let a revoked token through.
        if (typeof jti !== 'string' || !SAFE_ID.test(jti)) throw refuse('malformed jti');
        if (await deps.blocklist.isJtiRevoked(jti)) throw refuse('jti revoked');
      }
      // RFC 7519 §4.1.2: sub is a string; any other type would also escape user revocation below.
      if (typeof sub !== 'string') throw refuse('sub is not a string');
      const notBefore = await deps.blocklist.userNotBefore(sub);
      if (notBefore > 0 && (typeof iat !== 'number' || iat * 1000 < notBefore)) throw refuse('issued before the user was revoked');
      return principal;
    },
  };
}
