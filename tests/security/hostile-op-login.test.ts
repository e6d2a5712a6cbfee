import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startHostileOp, type HostileOp, type Mutation } from '../helpers/hostile-op.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { retryOnPortRace } from '../helpers/stage.ts';
import { redisClient, waitUntil } from '../helpers/token-kit.ts';

/**
 * The hostile-OP catalogue at the callback (security-cases.md section B, cases 14–28, 30, 31, 35): one OP that answers
 * the code exchange wrongly in one way per case. Each refused login answers 502 `idp_error`, sets no session
 * cookie and writes no session; each honest variant logs in. `rs` pins RS256 (the default), `es` pins ES256 on the
 * same OP, for the cases that need an EC-signed token. Case 30 (a discovery document naming another issuer) starts a
 * Gatehouse of its own, which never offers a login.
 */
describe('hostile OP at login', () => {
  const redisUrl = inject('redisUrl');
  let op: HostileOp;
  let backend: TestBackend;
  let rs: TestGatehouse;
  let es: TestGatehouse;
  let redis: Redis;

  beforeAll(async () => {
    op = await startHostileOp();
    backend = await startBackend();
    // Dozens of logins from one address within a minute: past the default /auth limit (60 a minute per client IP).
    const yaml = mappingsYaml(
      [{ frontendHost: '*', backend: backend.url }],
      'rateLimits:\n  auth: { requests: 10000, windowSeconds: 60 }\n',
    );
    [rs, es] = await Promise.all([
      retryOnPortRace(() => startGatehouse({ redisUrl, yaml, env: { ...op.env } })),
      retryOnPortRace(() => startGatehouse({ redisUrl, yaml, env: { ...op.env, OIDC_ID_TOKEN_SIGNING_ALG: 'ES256' } })),
    ]);
    // Without `idp`, startGatehouse does not wait for discovery.
    await Promise.all([rs.app.oidc.whenReady(10_000), es.app.oidc.whenReady(10_000)]);
    redis = redisClient(redisUrl);
  });
  afterAll(async () => {
    await Promise.all([rs?.close(), es?.close()]);
    await Promise.all([op?.close(), backend?.close()]);
    redis?.disconnect();
  });

  const sessionKeys = async (gh: TestGatehouse) => (await redis.keys(`${gh.config.redis.keyPrefix}s:*`)).length;

  /** /auth/login → the OP's authorization endpoint → the callback, whose answer is returned unread. */
  async function login(gh: TestGatehouse, mutation: Mutation): Promise<{ browser: Browser; callback: Response }> {
    op.login = mutation;
    try {
      const browser = new Browser();
      const start = await browser.fetch(`${gh.url}/auth/login`);
      expect(start.status).toBe(302);
      const authorize = await browser.fetch(start.headers.get('location') ?? '');
      expect(authorize.status).toBe(302);
      const callbackUrl = authorize.headers.get('location') ?? '';
      expect(callbackUrl.startsWith(`${gh.url}/auth/callback?`)).toBe(true);
      return { browser, callback: await browser.fetch(callbackUrl) };
    } finally {
      op.login = 'valid';
    }
  }

  /** `detail`: what Gatehouse logs, the stage and openid-client's code, so each row is refused for its own reason. */
  async function expectRefused(
    gh: TestGatehouse,
    mutation: Mutation,
    detail: string,
    endpoints: { userinfo?: number } = {},
  ): Promise<void> {
    const before = { keys: await sessionKeys(gh), token: op.counts.token, userinfo: op.counts.userinfo };
    const { browser, callback } = await login(gh, mutation);
    const cookies = callback.headers.getSetCookie().join('\n');
    await expectError(callback, 502, 'idp_error', mutation);
    expect(gh.logs.findLast((l) => l['code'] === 'idp_error')?.['detail'], 'the refusal logged').toBe(detail);
    expect(cookies, 'no session cookie').not.toContain(`${gh.config.session.cookieName}=`);
    expect(browser.cookie(gh.url, gh.config.session.cookieName)).toBeUndefined();
    await expectError(await browser.fetch(`${gh.url}/auth/me`), 401, 'unauthorized');
    expect(await sessionKeys(gh), 'no session written').toBe(before.keys);
    expect(op.counts.token - before.token, 'one code exchange').toBe(1);
    expect(op.counts.userinfo - before.userinfo, 'userinfo calls').toBe(endpoints.userinfo ?? 0);
  }

  async function expectLoggedIn(gh: TestGatehouse, mutation: Mutation): Promise<Browser> {
    const { browser, callback } = await login(gh, mutation);
    await callback.body?.cancel();
    expect(callback.status, mutation).toBe(302);
    expect(browser.cookie(gh.url, gh.config.session.cookieName)).toBeDefined();
    const me = await browser.fetch(`${gh.url}/auth/me`);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { sub: string } }).user.sub).toBe(op.user);
    return browser;
  }

  it('control: an honest OP logs in, with the unusable JWKS keys ignored (case 28)', async () => {
    await expectLoggedIn(rs, 'valid');
    const jwks = (await (await fetch(`${op.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining(['junk-akp', 'junk-made-up']));
  });

  it.each([
    ['bad-sig', 'case 14: RS256 signature bytes corrupted', 'OAUTH_INVALID_RESPONSE'],
    ['alg-none', 'case 16: alg none, though the OP advertises none', 'OAUTH_INVALID_RESPONSE'],
    ['hs256-client-secret', 'case 15/17: HS256 keyed with the client secret', 'OAUTH_INVALID_RESPONSE'],
    ['alg-swap-es256', 'case 17: a valid ES256 signature where RS256 is registered', 'OAUTH_INVALID_RESPONSE'],
    ['iss-suffix', 'case 18: iss + "1"', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['iss-missing', 'case 18: no iss', 'OAUTH_INVALID_RESPONSE'],
    ['aud-suffix', 'case 19: aud = client_id + "1"', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['aud-missing', 'case 19: no aud', 'OAUTH_INVALID_RESPONSE'],
    ['aud-multi-no-azp', 'case 20: a second audience, no azp', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['aud-multi-azp-other', 'case 20: a second audience, azp another client', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['iat-missing', 'case 21: no iat', 'OAUTH_INVALID_RESPONSE'],
    ['exp-past', 'case 22: exp 10 minutes ago', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'],
    ['exp-missing', 'case 22: no exp', 'OAUTH_INVALID_RESPONSE'],
    ['sub-missing', 'case 23: no sub', 'OAUTH_INVALID_RESPONSE'],
    ['nonce-suffix', 'case 24: nonce + "1"', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['nonce-missing', 'case 24: no nonce', 'OAUTH_INVALID_RESPONSE'],
    ['no-id-token', 'case 25: no id_token', 'OAUTH_INVALID_RESPONSE'],
    ['kid-absent', 'case 26b: no kid, two RSA keys in the JWKS', 'OAUTH_KEY_SELECTION_FAILED'],
    ['token-type-mac', 'case 35: token_type mac', 'OAUTH_UNSUPPORTED_OPERATION'],
  ] satisfies Array<[Mutation, string, string]>)('refused: %s (%s)', async (mutation, _case, code) => {
    await expectRefused(rs, mutation, `code exchange: ${code}`);
  });

  it('refused: userinfo names another sub (case 31): no session with those claims', async () => {
    await expectRefused(rs, 'userinfo-sub-mismatch', 'userinfo: OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED', { userinfo: 1 });
  });

  it.each([
    ['aud-array-single', 'case 20 control: aud as a one-element array'],
    ['azp-added', 'azp equal to the client id, one audience'],
    ['token-type-mixed-case', 'case 35: token_type "bEARER"'],
  ] satisfies Array<[Mutation, string]>)('accepted: %s (%s)', async (mutation, _case) => {
    await expectLoggedIn(rs, mutation);
  });

  it('accepted: no expires_in (case 35), and the session is not refreshed on every request', async () => {
    const browser = await expectLoggedIn(rs, 'no-expires-in');
    const refreshes = op.counts.refresh;
    for (let i = 0; i < 3; i++) {
      const res = await browser.fetch(`${rs.url}/api/no-expiry/${i}`);
      await res.body?.cancel();
      expect(res.status).toBe(200);
    }
    expect(op.counts.refresh).toBe(refreshes);
  });

  describe('ES256 pinned', () => {
    beforeAll(() => {
      op.alg = 'ES256';
    });
    afterAll(() => {
      op.alg = 'RS256';
    });

    it('control: an honest ES256 ID token logs in', async () => {
      await expectLoggedIn(es, 'valid');
    });

    it('accepted: no kid and one EC key in the JWKS (case 26a)', async () => {
      await expectLoggedIn(es, 'kid-absent');
    });

    it.each([
      ['bad-sig', 'case 15: ES256 signature bytes corrupted', 'OAUTH_INVALID_RESPONSE'],
      ['hs256-client-secret', 'case 15: HS256 keyed with the client secret', 'OAUTH_INVALID_RESPONSE'],
      ['alg-none', 'case 16', 'OAUTH_INVALID_RESPONSE'],
    ] satisfies Array<[Mutation, string, string]>)('refused: %s (%s)', async (mutation, _case, code) => {
      await expectRefused(es, mutation, `code exchange: ${code}`);
    });
  });

  it('discovery naming another issuer (case 30): no login offered, not ready, the log names the error', async () => {
    op.discovery = 'iss-suffix';
    const gh = await retryOnPortRace(() => startGatehouse({ redisUrl, yaml: 'mappings: []\n', env: { ...op.env } }));
    try {
      await waitUntil(() => gh.logs.some((l) => l['msg'] === 'identity provider discovery failed'), 5000, 'a failed discovery');
      const failed = gh.logs.find((l) => l['msg'] === 'identity provider discovery failed');
      expect((failed?.['err'] as { code?: string } | undefined)?.code).toBe('OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED');
      await expectError(await fetch(`${gh.url}/auth/login`, { redirect: 'manual' }), 503, 'idp_unavailable');
      const ready = await fetch(`${gh.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: Record<string, string> }).checks['idp']).toBe('fail');
      expect(gh.app.oidc.isReady()).toBe(false);
    } finally {
      op.discovery = 'valid';
      await gh.close();
    }
  });

  describe('key rotation (case 27)', () => {
    it('a key announced in the JWKS beforehand: the next login verifies without fetching the JWKS again', async () => {
      await expectLoggedIn(rs, 'valid');
      const fetched = op.counts.jwks;
      await op.rotate('announced');
      await expectLoggedIn(rs, 'valid');
      expect(op.counts.jwks).toBe(fetched);
    });

    it('an unannounced key less than 60 s after the last JWKS fetch: refused, no re-fetch (openid-client waits 60 s)', async () => {
      const fetched = op.counts.jwks;
      await op.rotate('unannounced');
      await expectRefused(rs, 'valid', 'code exchange: OAUTH_KEY_SELECTION_FAILED');
      expect(op.counts.jwks).toBe(fetched);
    });
  });
});
