import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, exportSPKI, SignJWT, type JWTPayload } from 'jose';
import { header, startBackend, startWsBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import {
  jsonOf,
  makeSigningKey,
  nowSeconds,
  readSession,
  sessionCookieOf,
  signJwt,
  unsignedJwt,
  upgradeStatus,
  type SigningKey,
} from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const API_AUDIENCE = 'https://api.gatehouse.test';

/**
 * Bearer access tokens on /api for clients without a session (RFC 9068 profile): the signature against the
 * issuer's JWKS with an asymmetric allowlist, iss, aud = API_AUDIENCE, exp/nbf with the configured leeway, and the
 * blocklist. A valid token yields identity headers from its claims and is relayed as it is; anything else is
 * 401 unauthorized before the backend is called.
 */
describe('bearer tokens on /api', () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let stranger: SigningKey;
  beforeAll(async () => {
    [rsa, ec, stranger] = await Promise.all([makeSigningKey('RS256'), makeSigningKey('ES256'), makeSigningKey('RS256')]);
  });
  // RS256 only: the IdP's own EC key is published too, so an ES256 token shows the allowlist at work.
  const stage = useStage(() => ({
    idp: { jwtAccessTokenAudience: API_AUDIENCE, jwks: { keys: [rsa.privateJwk, ec.privateJwk] } },
    backends: { backend: startBackend, wsBackend: startWsBackend },
    yaml: ({ backend, wsBackend }) =>
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/ws', backend: wsBackend.url },
        { frontendHost: '*', backend: backend.url },
      ]),
    gatehouse: { env: { API_AUDIENCE, API_TOKEN_ALGORITHMS: 'RS256', TOKEN_CLOCK_TOLERANCE_SECONDS: '5' } },
    more: { noBearer: {} },
  }));

  const claims = (over: Record<string, unknown> = {}): JWTPayload => {
    const iat = nowSeconds();
    const base: Record<string, unknown> = {
      iss: stage.idp.issuer,
      aud: API_AUDIENCE,
      sub: 'svc-reporting',
      email: 'reporting@example.test',
      email_verified: true,
      name: 'Reporting',
      iat,
      exp: iat + 120,
      jti: randomUUID(),
      client_id: 'reporting-cli',
    };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete base[k];
      else base[k] = v;
    }
    return base as JWTPayload;
  };
  const callsTo = (path: string) => stage.backends.backend.requests.filter((r) => r.url === path).length;
  const call = (path: string, token: string, gateway = stage.gh, extra: Record<string, string> = {}) =>
    fetch(`${gateway.url}/api${path}`, { headers: { authorization: `Bearer ${token}`, ...extra } });

  it('a valid token: identity headers from its claims, the token relayed as it is, spoofed identity headers dropped', async () => {
    const token = await signJwt(rsa, claims(), { typ: 'at+jwt' });
    const res = await call('/bearer/valid', token, stage.gh, { 'x-user-sub': 'admin', 'x-user-email': 'root@example.test' });
    await res.body?.cancel();
    expect(res.status).toBe(200);
    const rec = stage.backends.backend.last();
    expect(rec.url).toBe('/bearer/valid');
    expect(rec.headers.get('authorization')).toEqual([`Bearer ${token}`]);
    expect(rec.headers.get('x-user-sub')).toEqual(['svc-reporting']);
    expect(rec.headers.get('x-user-email')).toEqual(['reporting@example.test']);
    expect(rec.headers.get('x-user-name')).toEqual(['Reporting']);
  });

  it('an access token the IdP issued for API_AUDIENCE is accepted as a bearer token', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'olga');
    const stored = await readSession(stage.redis, stage.gh, sessionCookieOf(browser, stage.gh).value);
    const accessToken = stored?.tokens.accessToken as string;
    expect(decodeJwt(accessToken).aud).toBe(API_AUDIENCE);
    const res = await call('/bearer/idp-issued', accessToken);
    await res.body?.cancel();
    expect(res.status).toBe(200);
    expect(header(stage.backends.backend.last(), 'authorization')).toBe(`Bearer ${accessToken}`);
    expect(header(stage.backends.backend.last(), 'x-user-sub')).toBe('olga');
  });

  it('the clock leeway is honoured: 2 s past exp (or 2 s before nbf) with a 5 s tolerance still passes', async () => {
    for (const [path, over] of [
      ['/bearer/leeway-exp', { exp: nowSeconds() - 2 }],
      ['/bearer/leeway-nbf', { nbf: nowSeconds() + 2 }],
    ] as const) {
      const res = await call(path, await signJwt(rsa, claims(over)));
      await res.body?.cancel();
      expect(res.status).toBe(200);
      expect(callsTo(path)).toBe(1);
    }
  });

  const refused: Array<[string, () => Promise<string>]> = [
    ['expired beyond the leeway', () => signJwt(rsa, claims({ iat: nowSeconds() - 600, exp: nowSeconds() - 60 }))],
    ['not yet valid (nbf beyond the leeway)', () => signJwt(rsa, claims({ nbf: nowSeconds() + 60 }))],
    ['no exp', () => signJwt(rsa, claims({ exp: undefined }))],
    ['no sub', () => signJwt(rsa, claims({ sub: undefined }))],
    ['sub not a string (user revocation could not apply to it)', () => signJwt(rsa, claims({ sub: 12345 }))],
    ['wrong issuer', () => signJwt(rsa, claims({ iss: 'https://evil.example' }))],
    ['issuer with a trailing slash', () => signJwt(rsa, claims({ iss: `${stage.idp.issuer}/` }))],
    ['wrong audience', () => signJwt(rsa, claims({ aud: 'https://other-api.example' }))],
    ['no audience', () => signJwt(rsa, claims({ aud: undefined }))],
    ['an ID token (aud = the client id)', () => signJwt(rsa, claims({ aud: stage.idp.clientId }))],
    ['alg none', async () => unsignedJwt(claims(), { kid: rsa.kid })],
    [
      'alg none with the real signature kept',
      async () => {
        const real = await signJwt(rsa, claims());
        const [, payload, signature] = real.split('.');
        return `${Buffer.from(JSON.stringify({ alg: 'none', kid: rsa.kid })).toString('base64url')}.${payload}.${signature}`;
      },
    ],
    ['signed by an unknown key', () => signJwt(stranger, claims())],
    ['signed by an unknown key claiming the IdP key id', () => signJwt(stranger, claims(), { kid: rsa.kid })],
    ['signed by an unknown key with no kid', () => new SignJWT(claims()).setProtectedHeader({ alg: 'RS256' }).sign(stranger.privateKey)],
    [
      'HS256 keyed with the IdP public key (PEM)',
      async () => {
        const pem = await exportSPKI(rsa.publicKey);
        return new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(new TextEncoder().encode(pem));
      },
    ],
    [
      'HS256 keyed with the IdP public JWK',
      async () =>
        new SignJWT(claims())
          .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
          .sign(new TextEncoder().encode(JSON.stringify(rsa.publicJwk))),
    ],
    ["ES256 with the IdP's own EC key, outside API_TOKEN_ALGORITHMS", () => signJwt(ec, claims())],
    [
      'a payload altered after signing',
      async () => {
        const [h, , s] = (await signJwt(rsa, claims())).split('.');
        return `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')}.${s}`;
      },
    ],
    ['not a JWT', async () => 'opaque-token-value'],
  ];

  it.each(refused.map(([name, make], i) => [name, make, `/bearer/refused-${i}`] as const))(
    '%s → 401 unauthorized, backend never called',
    async (_name, make, path) => {
      const res = await jsonOf(await call(path, await make()));
      expectError(res, 401, 'unauthorized');
      expect(callsTo(path)).toBe(0);
    },
  );

  it('a revoked jti is refused, even right after the same token was accepted (and cached)', async () => {
    const jti = randomUUID();
    const token = await signJwt(rsa, claims({ jti }));
    const ok = await call('/bearer/jti-before', token);
    await ok.body?.cancel();
    expect(ok.status).toBe(200);
    await stage.gh.app.blocklist.revokeJti(jti, Date.now() + 120_000);
    const res = await jsonOf(await call('/bearer/jti-after', token));
    expectError(res, 401, 'unauthorized');
    expect(callsTo('/bearer/jti-after')).toBe(0);
  });

  it('a jti outside the printable-ASCII id set is refused, never waved past the blocklist unchecked', async () => {
    const jti = 'revoked jti with spaces';
    await stage.gh.app.blocklist.revokeJti(jti, Date.now() + 120_000);
    for (const [i, value] of [jti, 'tab\tjti', 'nul\u0000jti', 'é-jti'].entries()) {
      const res = await jsonOf(await call(`/bearer/odd-jti-${i}`, await signJwt(rsa, claims({ jti: value }))));
      expectError(res, 401, 'unauthorized');
      expect(callsTo(`/bearer/odd-jti-${i}`)).toBe(0);
    }
  });

  it('malformed Authorization headers and other schemes are 401', async () => {
    const token = await signJwt(rsa, claims());
    for (const [i, value] of [
      `Basic ${Buffer.from('a:b').toString('base64')}`,
      'Bearer',
      `Bearer ${token}.extra`,
      `Token ${token}`,
    ].entries()) {
      const res = await jsonOf(await fetch(`${stage.gh.url}/api/bearer/malformed-${i}`, { headers: { authorization: value } }));
      expectError(res, 401, 'unauthorized');
      expect(callsTo(`/bearer/malformed-${i}`)).toBe(0);
    }
  });

  it('WebSocket upgrades apply the same rules', async () => {
    const wsUrl = `${stage.gh.url}/api/ws/bearer`;
    expect(await upgradeStatus(wsUrl, undefined, { authorization: `Bearer ${await signJwt(rsa, claims())}` })).toBe(101);
    expect(await upgradeStatus(wsUrl, undefined, { authorization: `Bearer ${await signJwt(stranger, claims(), { kid: rsa.kid })}` })).toBe(
      401,
    );
    expect(await upgradeStatus(wsUrl, undefined, { authorization: `Bearer ${unsignedJwt(claims())}` })).toBe(401);
  });

  it('without API_AUDIENCE no bearer token is accepted', async () => {
    const res = await jsonOf(await call('/bearer/no-audience-configured', await signJwt(rsa, claims()), stage.more.noBearer));
    expectError(res, 401, 'unauthorized');
    expect(callsTo('/bearer/no-audience-configured')).toBe(0);
  });
});
