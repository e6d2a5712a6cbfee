import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportSPKI, SignJWT, type JWTPayload } from 'jose';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { useReplicas } from '../helpers/replicas.ts';
import {
  idpMetadata,
  jsonOf,
  makeSigningKey,
  nowSeconds,
  openWs,
  readSession,
  sessionCookieOf,
  signJwt,
  unsignedJwt,
  waitUntil,
  type SigningKey,
} from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * BCL-ALGNONE, BCL-ALG-AUD-ISS, BCL-EVENTS, BCL-OK (security cases 36–39): OpenID Connect Back-Channel
 * Logout 1.0 §2.6 validation and §2.8 responses. Two replicas share Redis: the IdP (or a test holding the
 * IdP's key) calls replica A, and sessions and WebSockets held on replica B end too.
 */
describe('back-channel logout', () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let stranger: SigningKey;
  beforeAll(async () => {
    [rsa, ec, stranger] = await Promise.all([makeSigningKey('RS256'), makeSigningKey('ES256'), makeSigningKey('RS256')]);
  });
  const stage = useReplicas(() => ({
    idp: { backchannelLogoutPath: '/auth/backchannel-logout', jwks: { keys: [rsa.privateJwk, ec.privateJwk] } },
    env: { TOKEN_REFRESH_SKEW_SECONDS: '0' },
  }));

  /** Logs `user` in on A; `idpCookiesFrom` reuses another browser's IdP session (same sid). */
  async function login(user: string, idpCookiesFrom?: Browser) {
    const browser = new Browser();
    const idpOrigin = new URL(stage.idp.issuer).origin;
    for (const [name, value] of idpCookiesFrom?.jars.get(idpOrigin) ?? []) browser.setCookie(idpOrigin, name, value);
    await browser.login(stage.a.url, user);
    const cookie = sessionCookieOf(browser, stage.a);
    const stored = await readSession(stage.redis, stage.a, cookie.value);
    const sid = stored?.record['sid'];
    if (typeof sid !== 'string')
      throw new Error('the session holds no sid (the IdP puts one in ID tokens when backchannel_logout_session_required)');
    return { browser, cookie, stored, sid };
  }

  const apiStatus = async (gh: TestGatehouse, cookie: string) => {
    const res = await fetch(`${gh.url}/api/bcl`, { headers: { cookie } });
    await res.body?.cancel();
    return res.status;
  };
  const postLogoutToken = (token: string | undefined, gh = stage.a) =>
    fetch(`${gh.url}/auth/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(token === undefined ? {} : { logout_token: token }),
    });
  const logoutClaims = (sub: string, sid: string | undefined, over: Record<string, unknown> = {}): JWTPayload => {
    const iat = nowSeconds();
    const base: Record<string, unknown> = {
      iss: stage.idp.issuer,
      aud: stage.idp.clientId,
      iat,
      exp: iat + 120,
      jti: randomUUID(),
      sub,
      ...(sid ? { sid } : {}),
      events: { [EVENT]: {} },
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return base as JWTPayload;
  };

  // The IdP itself sends the logout token: the dev IdP lifts oidc-provider's SSRF guard so it can reach loopback.
  it('a real RP-initiated logout at the IdP reaches A and ends the session on both replicas, closing its WebSocket on B', async () => {
    const { browser, cookie, stored } = await login('bella');
    expect(await apiStatus(stage.b, cookie.header)).toBe(200);
    const socket = await openWs(`${stage.b.url}/api/ws/bcl`, cookie.header);
    const before = stage.idp.events.get('backchannel.success') ?? 0;

    // The user signs out at the IdP (not through Gatehouse): the IdP's end_session page, then its confirm form.
    const meta = await idpMetadata(stage.idp);
    const endSession = new URL(meta['end_session_endpoint'] as string);
    endSession.searchParams.set('id_token_hint', stored?.tokens.idToken as string);
    endSession.searchParams.set('post_logout_redirect_uri', `${stage.a.url}/`);
    const page = await browser.fetch(endSession.href);
    const html = await page.text();
    expect(page.status).toBe(200);
    const action = /<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"/.exec(html)?.[1] ?? /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(action && xsrf).toBeTruthy();
    const confirmed = await browser.fetch(new URL(action as string, endSession).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: xsrf as string, logout: 'yes' }),
    });
    await confirmed.body?.cancel();
    expect(confirmed.status).toBe(303);

    // oidc-provider awaits the back-channel call before answering, and counts a 200 from us as a success.
    expect((stage.idp.events.get('backchannel.success') ?? 0) - before).toBe(1);
    expect(stage.idp.events.get('backchannel.error') ?? 0).toBe(0);
    expect(await readSession(stage.redis, stage.a, cookie.value)).toBeUndefined();
    const closed = await Promise.race([socket.closed, new Promise<undefined>((r) => setTimeout(r, 1000))]);
    expect(closed?.code).toBe(1008);
    await waitUntil(async () => (await apiStatus(stage.b, cookie.header)) === 401, 1000, 'replica B to refuse the session');
    expect(await apiStatus(stage.a, cookie.header)).toBe(401);
  });

  it('a valid logout token by sid: 200 no-store, every session of that sid ends on both replicas (WebSocket on B closed); the replayed token is refused and a new session survives it', async () => {
    const first = await login('sami');
    const second = await login('sami', first.browser);
    expect(second.sid).toBe(first.sid);
    const other = await login('sami');
    expect(other.sid).not.toBe(first.sid);
    expect(await apiStatus(stage.b, first.cookie.header)).toBe(200);
    const socket = await openWs(`${stage.b.url}/api/ws/bcl`, first.cookie.header);

    const token = await signJwt(rsa, logoutClaims('sami', first.sid), { typ: 'logout+jwt' });
    const res = await postLogoutToken(token);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    await res.body?.cancel();
    expect(await readSession(stage.redis, stage.a, first.cookie.value)).toBeUndefined();
    expect(await readSession(stage.redis, stage.a, second.cookie.value)).toBeUndefined();
    const closed = await Promise.race([socket.closed, new Promise<undefined>((r) => setTimeout(r, 1000))]);
    expect(closed?.code).toBe(1008);
    await waitUntil(async () => (await apiStatus(stage.b, first.cookie.header)) === 401, 1000, 'replica B to refuse the session');
    expect(await apiStatus(stage.b, second.cookie.header)).toBe(401);
    // Another IdP session of the same user is not named by this sid.
    expect(await apiStatus(stage.b, other.cookie.header)).toBe(200);

    // The IdP session still exists (the token was ours), so logging in again yields the same sid (the IdP
    // renamed its session cookie at the second login: the latest browser holds the current one).
    const third = await login('sami', second.browser);
    expect(third.sid).toBe(first.sid);
    const replay = await jsonOf(await postLogoutToken(token, stage.b));
    expectError(replay, 400, 'invalid_logout_token');
    expect(await apiStatus(stage.a, third.cookie.header)).toBe(200);
  });

  it('a valid logout token with sub and no sid ends every session of that user only', async () => {
    const one = await login('umar');
    const two = await login('umar');
    const bystander = await login('vera');
    const res = await postLogoutToken(await signJwt(rsa, logoutClaims('umar', undefined)));
    expect(res.status).toBe(200);
    await res.body?.cancel();
    expect(await readSession(stage.redis, stage.a, one.cookie.value)).toBeUndefined();
    expect(await readSession(stage.redis, stage.a, two.cookie.value)).toBeUndefined();
    expect(await apiStatus(stage.a, one.cookie.header)).toBe(401);
    expect(await apiStatus(stage.a, bystander.cookie.header)).toBe(200);
  });

  describe('invalid logout tokens: 400 invalid_logout_token, nothing destroyed', () => {
    let victim: Awaited<ReturnType<typeof login>>;
    beforeAll(async () => {
      victim = await login('hank');
    });

    const hostile: Array<[string, () => Promise<string | undefined>]> = [
      ['alg none (BCL-ALGNONE)', async () => unsignedJwt(logoutClaims('hank', victim.sid), { kid: rsa.kid })],
      ['signed by an unknown key', async () => signJwt(stranger, logoutClaims('hank', victim.sid))],
      [
        'signed by an unknown key claiming the IdP key id',
        async () => signJwt(stranger, logoutClaims('hank', victim.sid), { kid: rsa.kid }),
      ],
      ["ES256 with the IdP's own EC key when RS256 is registered", async () => signJwt(ec, logoutClaims('hank', victim.sid))],
      [
        'HS256 keyed with the IdP public key',
        async () => {
          const pem = await exportSPKI(rsa.publicKey);
          return new SignJWT(logoutClaims('hank', victim.sid))
            .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
            .sign(new TextEncoder().encode(pem));
        },
      ],
      ['wrong audience', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { aud: 'another-client' }))],
      ['no audience', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { aud: undefined }))],
      ['wrong issuer', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { iss: 'https://evil.example' }))],
      ['issuer with a trailing slash', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { iss: `${stage.idp.issuer}/` }))],
      ['a nonce present', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { nonce: 'n-0S6_WzA2Mj' }))],
      ['no events claim', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { events: undefined }))],
      [
        'another event only',
        async () => signJwt(rsa, logoutClaims('hank', victim.sid, { events: { 'http://schemas.openid.net/event/foobar': {} } })),
      ],
      ['the event member a string', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { events: { [EVENT]: 'yes' } }))],
      ['the event member null', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { events: { [EVENT]: null } }))],
      ['the event member an array', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { events: { [EVENT]: [] } }))],
      ["sid not a string (with the user's sub)", async () => signJwt(rsa, logoutClaims('hank', undefined, { sid: 42 }))],
      ["sub not a string (with the session's sid)", async () => signJwt(rsa, logoutClaims('hank', victim.sid, { sub: { id: 'hank' } }))],
      ['neither sid nor sub', async () => signJwt(rsa, logoutClaims('hank', undefined, { sub: undefined }))],
      ['no jti', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { jti: undefined }))],
      ['no iat', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { iat: undefined }))],
      ['iat an hour old', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { iat: nowSeconds() - 3600, exp: nowSeconds() + 60 }))],
      ['expired', async () => signJwt(rsa, logoutClaims('hank', victim.sid, { iat: nowSeconds() - 300, exp: nowSeconds() - 240 }))],
      ['not a JWT', async () => 'not-a-jwt'],
      ['missing logout_token', async () => undefined],
    ];

    it.each(hostile)('%s', async (_name, make) => {
      const res = await postLogoutToken(await make());
      const body = await jsonOf(res);
      expectError(body, 400, 'invalid_logout_token');
      expect(res.headers.get('cache-control')).toMatch(/no-store/);
      expect(await readSession(stage.redis, stage.a, victim.cookie.value)).toBeDefined();
      expect(await apiStatus(stage.b, victim.cookie.header)).toBe(200);
    });

    it("a sid with another user's sub does not end the session", async () => {
      const res = await postLogoutToken(await signJwt(rsa, logoutClaims('mallory', victim.sid)));
      await res.body?.cancel();
      expect([200, 400]).toContain(res.status);
      expect(await apiStatus(stage.a, victim.cookie.header)).toBe(200);
    });
  });
});
