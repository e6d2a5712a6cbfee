import { describe, expect, inject, it } from 'vitest';
import { decodeJwt } from 'jose';
import { header, startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { startGatehouse } from '../helpers/gatehouse.ts';
import { jsonOf, readSession, refreshAtIdp, sessionCookieOf, sleep } from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const API_AUDIENCE = 'https://api.gatehouse.test';

/**
 * SESS-LOGOUT (46): POST /auth/logout ends the session here, revokes the refresh token at the IdP (RFC 7009),
 * and blocklists the JWT access token's jti, so the token cannot be replayed as a bearer token either.
 */
describe.concurrent('logout revokes what the session held', () => {
  const stage = useStage({
    idp: { accessTokenTtlSeconds: 4, jwtAccessTokenAudience: API_AUDIENCE },
    backends: { backend: startBackend },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
    gatehouse: { env: { TOKEN_REFRESH_SKEW_SECONDS: '1', API_AUDIENCE, TOKEN_CLOCK_TOLERANCE_SECONDS: '30' } },
  });

  const callsTo = (prefix: string) => stage.backends.backend.requests.filter((r) => r.url.startsWith(prefix)).length;
  const asBearer = (path: string, token: string) => fetch(`${stage.gh.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

  async function loginWithJwtAccessToken(user: string) {
    const browser = new Browser();
    await browser.login(stage.gh.url, user);
    const cookie = sessionCookieOf(browser, stage.gh);
    const stored = await readSession(stage.redis, stage.gh, cookie.value);
    if (!stored) throw new Error('no session record after login');
    const jti = decodeJwt(stored.tokens.accessToken).jti;
    expect(jti).toBeTypeOf('string');
    return { browser, cookie, stored, jti: jti as string };
  }

  it('destroys the session, revokes the refresh token at the IdP, and refuses the access token as a bearer token', async () => {
    const { browser, cookie, stored, jti } = await loginWithJwtAccessToken('lena');
    const res = await fetch(`${stage.gh.url}/api/lo/0`, { headers: { cookie: cookie.header } });
    await res.body?.cancel();
    expect(res.status).toBe(200);
    expect(header(stage.backends.backend.last(), 'authorization')).toBe(`Bearer ${stored.tokens.accessToken}`);
    // The same access token is a valid bearer token before logout (so the refusal below is the revocation).
    const before = await asBearer('/api/lo/bearer-before', stored.tokens.accessToken);
    await before.body?.cancel();
    expect(before.status).toBe(200);
    expect(header(stage.backends.backend.last(), 'x-user-sub')).toBe('lena');

    const revokedBefore = stage.idp.events.get('grant.revoked') ?? 0;
    const out = await browser.fetch(`${stage.gh.url}/auth/logout`, { method: 'POST' });
    await out.body?.cancel();
    expect(out.status).toBe(200);

    // The captured cookie is dead and its record is gone.
    const replay = await jsonOf(await fetch(`${stage.gh.url}/api/lo/1`, { headers: { cookie: cookie.header } }));
    expectError(replay, 401, 'unauthorized');
    expect(await readSession(stage.redis, stage.gh, cookie.value)).toBeUndefined();

    // RFC 7009 at the IdP: the refresh token no longer works there.
    expect(await refreshAtIdp(stage.idp, stored.tokens.refreshToken as string)).toEqual({ status: 400, error: 'invalid_grant' });
    expect((stage.idp.events.get('grant.revoked') ?? 0) - revokedBefore).toBeGreaterThanOrEqual(1);

    // The access token's jti is blocklisted (with a TTL), and the token is refused as a bearer token.
    const ttl = await stage.redis.pttl(`${stage.gh.config.redis.keyPrefix}rv:j:${jti}`);
    expect(ttl).toBeGreaterThan(0);
    const after = await jsonOf(await asBearer('/api/lo/bearer-after', stored.tokens.accessToken));
    expectError(after, 401, 'unauthorized');
    expect(callsTo('/lo/bearer-after')).toBe(0);
    expect(callsTo('/lo/1')).toBe(0);
  });

  it('keeps the logged-out access token refused past its exp while the clock tolerance would still accept it', async () => {
    const { browser, stored } = await loginWithJwtAccessToken('lars');
    const exp = decodeJwt(stored.tokens.accessToken).exp as number;
    const out = await browser.fetch(`${stage.gh.url}/auth/logout`, { method: 'POST' });
    await out.body?.cancel();
    expect(out.status).toBe(200);

    // 30 s tolerance: a token 1.5 s past exp still verifies, so only the blocklist can refuse it. Asked on a
    // replica that starts now (a restart, a scale-up): no revocation in its cache, only what Redis still holds.
    await sleep(Math.max(0, exp * 1000 + 1500 - Date.now()));
    const fresh = await startGatehouse({
      idp: stage.idp,
      redisUrl: inject('redisUrl'),
      yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${stage.backends.backend.url}"\n`,
      env: {
        TOKEN_REFRESH_SKEW_SECONDS: '1',
        API_AUDIENCE,
        TOKEN_CLOCK_TOLERANCE_SECONDS: '30',
        REDIS_KEY_PREFIX: stage.gh.config.redis.keyPrefix,
      },
    });
    try {
      for (const instance of [stage.gh, fresh]) {
        const res = await jsonOf(
          await fetch(`${instance.url}/api/lo/late`, { headers: { authorization: `Bearer ${stored.tokens.accessToken}` } }),
        );
        expectError(res, 401, 'unauthorized');
      }
      expect(callsTo('/lo/late')).toBe(0);
    } finally {
      await fresh.close();
    }
  });
});
