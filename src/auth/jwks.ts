import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { GatehouseError } from '../errors.ts';
import type { OidcClient } from './oidc.ts';

/**
 * The issuer's signing keys for tokens Gatehouse verifies itself (logout tokens, bearer access tokens).
 * jose caches the set, refetches on an unknown `kid` at most once per cooldown (30 s), so a storm of
 * made-up kids costs one fetch per window.
 */
export function createIssuerKeys(oidc: OidcClient): () => JWTVerifyGetKey {
  let keys: JWTVerifyGetKey | undefined;
  return () => {
    if (keys) return keys;
    const uri = oidc.configuration().serverMetadata().jwks_uri;
    if (!uri) throw new GatehouseError('idp_error', { logDetail: 'the issuer publishes no jwks_uri' });
    keys = createRemoteJWKSet(new URL(uri), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000, timeoutDuration: 5000 });
    return keys;
  };
}
