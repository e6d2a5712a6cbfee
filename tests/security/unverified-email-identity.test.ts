import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { header, send, startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startHostileOp, type HostileOp } from '../helpers/hostile-op.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { retryOnPortRace, useStage } from '../helpers/stage.ts';
import { makeSigningKey, nowSeconds, sessionCookieOf, signJwt, type SigningKey } from '../helpers/token-kit.ts';

const API_AUDIENCE = 'https://api.email.test';

/**
 * CLAIM-EMAIL (catalogue #34; oauth2-proxy GHSA-c5c4-8r6x-56w3): many IdPs let a user type any address and mark
 * it `email_verified: false`. Such an address must not become an identity a backend trusts: `x-user-email` (and any
 * identity header mapped from `email`) is withheld unless the IdP says `email_verified: true`, and an email-domain
 * rule needs a verified, plain `local@domain` address.
 */
describe('an unverified email is never an identity', () => {
  let key: SigningKey;
  beforeAll(async () => {
    key = await makeSigningKey('RS256');
  });
  const stage = useStage(() => ({
    idp: {
      jwtAccessTokenAudience: API_AUDIENCE,
      jwks: { keys: [key.privateJwk] },
      accounts: { mallory: { email: 'ceo@example.com', email_verified: false }, victor: { email: 'victor@example.com' } },
    },
    backends: { backend: startBackend },
    yaml: ({ backend }) =>
      mappingsYaml([
        { frontendHost: '*', backend: backend.url, rules: [{ match: { path: '/corp/*' }, emailDomains: ['example.com'] }] },
        { frontendHost: '*', pathPrefix: '/custom', backend: backend.url, identityHeaders: { 'x-user-sub': 'sub', 'x-mail': 'email' } },
        { frontendHost: '*', pathPrefix: '/trusting', backend: backend.url, sendUnverifiedEmail: true },
      ]),
    gatehouse: { env: { API_AUDIENCE, API_TOKEN_ALGORITHMS: 'RS256' } },
  }));
  const cookies = new Map<string, string>();
  beforeAll(async () => {
    for (const user of ['mallory', 'victor']) {
      const browser = new Browser();
      await browser.login(stage.gh.url, user);
      cookies.set(user, sessionCookieOf(browser, stage.gh).header);
    }
  });
  const bearer = async (claims: Record<string, unknown>) => {
    const iat = nowSeconds();
    const token = await signJwt(key, {
      iss: stage.idp.issuer,
      aud: API_AUDIENCE,
      sub: 'svc',
      iat,
      exp: iat + 120,
      jti: randomUUID(),
      ...claims,
    });
    return ['Authorization', `Bearer ${token}`];
  };
  const forwarded = async (path: string, headers: string[]) => {
    const res = await send(stage.gh.url, { path, headers });
    expect(res.status, path).toBe(200);
    return stage.backends.backend.last();
  };

  it('a session whose IdP marks the address unverified: x-user-email is withheld, a forged one stripped, the rest sent', async () => {
    const rec = await forwarded('/api/x', ['Cookie', cookies.get('mallory') as string, 'X-User-Email', 'ceo@example.com']);
    expect(header(rec, 'x-user-sub')).toBe('mallory');
    expect(header(rec, 'x-user-name')).toBe('Mallory');
    expect(rec.headers.has('x-user-email')).toBe(false);
    expect(header(await forwarded('/api/x', ['Cookie', cookies.get('victor') as string]), 'x-user-email')).toBe('victor@example.com');
  });

  it('any identity header mapped from email is withheld the same way', async () => {
    const rec = await forwarded('/api/custom/x', ['Cookie', cookies.get('mallory') as string, 'X-Mail', 'ceo@example.com']);
    expect(header(rec, 'x-user-sub')).toBe('mallory');
    expect(rec.headers.has('x-mail')).toBe(false);
    expect(header(await forwarded('/api/custom/x', ['Cookie', cookies.get('victor') as string]), 'x-mail')).toBe('victor@example.com');
  });

  it('a bearer token: only email_verified: true (the boolean) lets its email through', async () => {
    for (const verified of [undefined, false, 'true', 1]) {
      const rec = await forwarded(
        '/api/x',
        await bearer({ email: 'svc@example.com', ...(verified === undefined ? {} : { email_verified: verified }) }),
      );
      expect(rec.headers.has('x-user-email'), `email_verified: ${String(verified)}`).toBe(false);
    }
    expect(header(await forwarded('/api/x', await bearer({ email: 'svc@example.com', email_verified: true })), 'x-user-email')).toBe(
      'svc@example.com',
    );
  });

  it('sendUnverifiedEmail: true opts a mapping out', async () => {
    expect(header(await forwarded('/api/trusting/x', ['Cookie', cookies.get('mallory') as string]), 'x-user-email')).toBe(
      'ceo@example.com',
    );
  });

  it('an email-domain rule refuses an unverified address in the domain, and a verified one with two @', async () => {
    const reached = () => stage.backends.backend.requests.length;
    const get = (headers: string[]) => () => send(stage.gh.url, { path: '/api/corp/x', headers });
    await expectErrorUnforwarded(reached, get(['Cookie', cookies.get('mallory') as string]), 403, 'forbidden');
    for (const email of ['attacker@evil.com@example.com', 'attacker@evil.com\n@example.com', '@example.com', 'a@example.com.evil.net']) {
      await expectErrorUnforwarded(reached, get(await bearer({ email, email_verified: true })), 403, 'forbidden', email);
    }
    await forwarded('/api/corp/x', ['Cookie', cookies.get('victor') as string]);
  });
});

/**
 * The login keeps `email_verified` beside the address it speaks for: an ID token naming an address without
 * vouching for it, and a userinfo answer vouching for another, must not add up to a verified first address.
 */
describe('email_verified from another source never vouches for the ID token address', () => {
  const redisUrl = inject('redisUrl');
  let op: HostileOp;
  let backend: TestBackend;
  let gh: TestGatehouse;
  beforeAll(async () => {
    op = await startHostileOp();
    backend = await startBackend();
    gh = await retryOnPortRace(() =>
      startGatehouse({ redisUrl, yaml: mappingsYaml([{ frontendHost: '*', backend: backend.url }]), env: { ...op.env } }),
    );
    await gh.app.oidc.whenReady(10_000);
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([op?.close(), backend?.close()]);
  });

  it('x-user-email is withheld; the session keeps the ID token address, unverified', async () => {
    op.login = 'email-verified-elsewhere';
    op.user = 'eve';
    const browser = new Browser();
    try {
      const start = await browser.fetch(`${gh.url}/auth/login`);
      const authorize = await browser.fetch(start.headers.get('location') ?? '');
      const callback = await browser.fetch(authorize.headers.get('location') ?? '');
      expect(callback.status).toBe(302);
    } finally {
      op.login = 'valid';
    }
    const res = await send(gh.url, { path: '/api/x', headers: ['Cookie', sessionCookieOf(browser, gh).header] });
    expect(res.status).toBe(200);
    expect(header(backend.last(), 'x-user-sub')).toBe('eve');
    expect(backend.last().headers.has('x-user-email')).toBe(false);
    const session = await gh.app.sessions.load(parseSessionSecret(sessionCookieOf(browser, gh).value));
    expect(session?.claims['email']).toBe('eve@typed-at-signup.example');
    expect(session?.claims['email_verified']).toBeUndefined();
  });
});
