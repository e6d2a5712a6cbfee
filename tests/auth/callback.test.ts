import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import type { TestIdp } from '../helpers/idp.ts';
import { startStage } from '../helpers/stage.ts';
import { expectError } from '../helpers/expect-error.ts';

const SESSION = '__Host-gh_session';
/** Each login's binding cookie is `__Host-gh_login.<slot>`, its own per login (two tabs never share one). */
const BINDING = '__Host-gh_login.';

/** The name and value of the one login-binding cookie a browser holds. */
function bindingOf(browser: Browser, origin: string): [string, string] | undefined {
  const found = [...(browser.jars.get(origin) ?? [])].filter(([name]) => name.startsWith(BINDING));
  if (found.length > 1) throw new Error(`${found.length} binding cookies`);
  return found[0];
}

/**
 * Walks /auth/login → IdP login form → consent like Browser.login, but stops before the callback:
 * returns the callback URL the IdP sent the browser to, not yet visited.
 */
async function authorize(browser: Browser, gatehouseUrl: string, username = 'alice'): Promise<string> {
  let url = `${gatehouseUrl}/auth/login`;
  let init: RequestInit = {};
  for (let step = 0; step < 25; step++) {
    if (url.startsWith(`${gatehouseUrl}/auth/callback`)) return url;
    const res = await browser.fetch(url, init);
    init = {};
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      url = new URL(res.headers.get('location') ?? '', url).href;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`step ${step} at ${url}: ${res.status} ${html.slice(0, 200)}`);
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
    if (!form) throw new Error(`no form at ${url}`);
    const body = new URLSearchParams();
    for (const input of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
      const name = /name="([^"]+)"/.exec(input[0])?.[1];
      if (!name) continue;
      body.set(name, name === 'login' ? username : name === 'password' ? 'any-password' : (/value="([^"]*)"/.exec(input[0])?.[1] ?? ''));
    }
    url = new URL(form[1] ?? '', url).href;
    init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('the IdP never redirected to the callback');
}

/** Starts a login and returns the state Gatehouse put in the authorization request (without visiting the IdP). */
async function beginLogin(browser: Browser, gatehouseUrl: string): Promise<string> {
  const res = await browser.fetch(`${gatehouseUrl}/auth/login`);
  expect(res.status).toBe(302);
  const state = new URL(res.headers.get('location') ?? '').searchParams.get('state');
  if (!state) throw new Error('no state in the authorization request');
  return state;
}

function withParams(callbackUrl: string, change: (p: URLSearchParams) => void): string {
  const url = new URL(callbackUrl);
  change(url.searchParams);
  return url.href;
}

/** A refused callback: the status and code, no session cookie, the binding cookie cleared, and nothing cacheable. */
async function expectRefused(res: Response, status: number, code: string): Promise<string> {
  const text = await res.text();
  expectError({ status: res.status, body: text }, status, code);
  const cookies = res.headers.getSetCookie();
  expect(cookies.filter((c) => c.startsWith(`${SESSION}=`))).toEqual([]);
  const bindings = cookies.filter((c) => c.startsWith(BINDING));
  expect(bindings.length).toBeGreaterThan(0);
  for (const binding of bindings) {
    expect(binding).toMatch(/^__Host-gh_login\.[\w-]+=;/);
    expect(binding).toMatch(/Max-Age=0/);
  }
  expect(res.headers.get('cache-control')).toBe('no-store');
  return text;
}

describe('OIDC callback', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;
  let redis: Redis;
  let clockSkewMs = 0;

  const grants = () => idp.events.get('grant.success') ?? 0;
  const sessionKeys = () => redis.keys(`${gh.config.redis.keyPrefix}s:*`);
  const txKey = (state: string) => `${gh.config.redis.keyPrefix}tx:${createHash('sha256').update(state).digest('base64url')}`;
  /** Takes a fresh browser's login up to the callback, alters its query, and expects it refused with no code exchange. */
  const refuseAltered = async (change: (p: URLSearchParams) => void, status: number, code: string) => {
    const browser = new Browser();
    const callback = await authorize(browser, gh.url);
    const before = grants();
    await expectRefused(await browser.fetch(withParams(callback, change)), status, code);
    expect(grants()).toBe(before);
    return { browser, callback };
  };

  beforeAll(async () => {
    ({ idp, gh } = await startStage({ gatehouse: { redisUrl: inject('redisUrl'), now: () => Date.now() + clockSkewMs } }));
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await gh?.close();
    await idp?.close();
    redis?.disconnect();
  });

  it('refuses a replay of the exact successful callback URL (400 invalid_state): no second code exchange, the session stays', async () => {
    const browser = new Browser();
    const callback = await authorize(browser, gh.url);
    const first = await browser.fetch(callback);
    expect(first.status).toBe(302);
    const session = browser.cookie(gh.url, SESSION);
    expect(session).toBeDefined();
    const grantsAfterLogin = grants();
    const keysAfterLogin = (await sessionKeys()).sort();

    await expectRefused(await browser.fetch(callback), 400, 'invalid_state');
    await expectRefused(await new Browser().fetch(callback), 400, 'invalid_state');

    expect(grants()).toBe(grantsAfterLogin);
    expect((await sessionKeys()).sort()).toEqual(keysAfterLogin);
    expect(browser.cookie(gh.url, SESSION)).toBe(session);
    const me = await browser.fetch(`${gh.url}/auth/me`);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { sub: string } }).user.sub).toBe('alice');
  });

  it('refuses an unknown state (400 invalid_state) without calling the token endpoint', async () => {
    const browser = new Browser();
    const callback = await authorize(browser, gh.url);
    const before = grants();
    const keys = await sessionKeys();
    const forged = withParams(callback, (p) => p.set('state', randomBytes(32).toString('base64url')));
    await expectRefused(await browser.fetch(forged), 400, 'invalid_state');
    expect(grants()).toBe(before);
    expect((await sessionKeys()).length).toBe(keys.length);
    // A forged state names another login's cookie: this browser's own pending login is not ended by it.
    expect((await browser.fetch(callback)).status).toBe(302);
    expect(bindingOf(browser, gh.url)).toBeUndefined();
  });

  it('refuses a callback without state (400 invalid_state)', async () => {
    await refuseAltered((p) => p.delete('state'), 400, 'invalid_state');
  });

  it('keeps a pending login in Redis for at most 10 minutes, and refuses its state once that has passed (400 invalid_state)', async () => {
    const browser = new Browser();
    const state = await beginLogin(browser, gh.url);
    const ttl = await redis.pttl(txKey(state));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);

    const fresh = new Browser();
    const callback = await authorize(fresh, gh.url);
    const before = grants();
    clockSkewMs = 10 * 60 * 1000 + 1000;
    try {
      await expectRefused(await fresh.fetch(callback), 400, 'invalid_state');
    } finally {
      clockSkewMs = 0;
    }
    expect(grants()).toBe(before);
    expect(fresh.cookie(gh.url, SESSION)).toBeUndefined();
  });

  it('refuses the callback in a browser that did not start the login (login CSRF): 400 invalid_state, no session', async () => {
    const attacker = new Browser();
    const callback = await authorize(attacker, gh.url, 'mallory');
    const before = grants();

    const victim = new Browser();
    await expectRefused(await victim.fetch(callback), 400, 'invalid_state');
    expect(victim.cookie(gh.url, SESSION)).toBeUndefined();

    // A victim that has a login of its own pending holds a binding cookie, just not the one this state was issued to.
    const attacker2 = new Browser();
    const callback2 = await authorize(attacker2, gh.url, 'mallory');
    const victim2 = new Browser();
    await beginLogin(victim2, gh.url);
    expect(bindingOf(victim2, gh.url)).toBeDefined();
    await expectRefused(await victim2.fetch(callback2), 400, 'invalid_state');
    expect(victim2.cookie(gh.url, SESSION)).toBeUndefined();
    expect(grants()).toBe(before);

    // The attempt consumed the transaction: the attacker's own browser cannot finish it either.
    await expectRefused(await attacker.fetch(callback), 400, 'invalid_state');
  });

  // CK-TOSS (catalogue #55): a sibling subdomain can plant a binding cookie of its own next to the victim's, and
  // chooses which copy the browser sends first. A duplicated binding ends the login like a wrong one.
  it('refuses a callback that carries the binding cookie twice (cookie tossing): 400 invalid_state, no code exchange', async () => {
    const attacker = new Browser();
    const attackerCallback = await authorize(attacker, gh.url, 'mallory');
    const [name, attackerBinding] = bindingOf(attacker, gh.url) ?? [];
    const victim = new Browser();
    await beginLogin(victim, gh.url);
    const [, victimBinding] = bindingOf(victim, gh.url) ?? [];
    expect(attackerBinding && victimBinding).toBeTruthy();
    const before = grants();
    // The attacker's copy first: taking the first would finish the attacker's login in the victim's browser.
    await expectRefused(
      await victim.fetch(attackerCallback, { headers: { cookie: `${name}=${attackerBinding}; ${name}=${victimBinding}` } }),
      400,
      'invalid_state',
    );

    // The user's own copy first, a planted one after: refused too (no copy is trusted), and the login is used up.
    const user = new Browser();
    const callback = await authorize(user, gh.url);
    const [ownName, own] = bindingOf(user, gh.url) ?? [];
    await expectRefused(
      await user.fetch(callback, { headers: { cookie: `${ownName}=${own}; ${ownName}=${attackerBinding}` } }),
      400,
      'invalid_state',
    );
    await expectRefused(await user.fetch(callback, { headers: { cookie: `${ownName}=${own}` } }), 400, 'invalid_state');
    expect(grants()).toBe(before);
    expect(user.cookie(gh.url, SESSION)).toBeUndefined();
  });

  it('refuses repeated code or state parameters (400 bad_request)', async () => {
    const before = grants();
    const b1 = new Browser();
    const cb1 = await authorize(b1, gh.url);
    const code = new URL(cb1).searchParams.get('code') ?? '';
    await expectRefused(await b1.fetch(withParams(cb1, (p) => p.append('code', `${code}x`))), 400, 'bad_request');

    const b2 = new Browser();
    const cb2 = await authorize(b2, gh.url);
    const state = new URL(cb2).searchParams.get('state') ?? '';
    await expectRefused(await b2.fetch(withParams(cb2, (p) => p.append('state', state))), 400, 'bad_request');
    expect(grants()).toBe(before);
    expect(b1.cookie(gh.url, SESSION)).toBeUndefined();
    expect(b2.cookie(gh.url, SESSION)).toBeUndefined();
  });

  it('refuses a callback with neither code nor error (400 bad_request), consuming the login', async () => {
    const { callback } = await refuseAltered((p) => p.delete('code'), 400, 'bad_request');
    const state = new URL(callback).searchParams.get('state') ?? '';
    expect(await redis.exists(txKey(state))).toBe(0);
  });

  it('answers an IdP error response with 400 login_failed, never echoing error_description, and consumes the login', async () => {
    const browser = new Browser();
    const state = await beginLogin(browser, gh.url);
    const keys = await sessionKeys();
    const description = '<script>alert(1)</script>';
    // As oidc-provider sends it: RFC 9207 iss on error responses too.
    const url = `${gh.url}/auth/callback?error=access_denied&error_description=${encodeURIComponent(description)}&state=${encodeURIComponent(state)}&iss=${encodeURIComponent(idp.issuer)}`;
    const res = await browser.fetch(url);
    const contentType = res.headers.get('content-type');
    const text = await expectRefused(res, 400, 'login_failed');
    expect(contentType).toMatch(/^application\/json/);
    expect(text).not.toContain('<script>');
    expect(text).not.toContain('alert(1)');
    expect(await redis.exists(txKey(state))).toBe(0);
    expect((await sessionKeys()).length).toBe(keys.length);
  });

  it('refuses an iss that differs from the issuer, even by a trailing slash, without a code exchange or a session', async () => {
    for (const iss of ['https://evil.example', `${idp.issuer}/`, idp.issuer.toUpperCase()]) {
      const browser = new Browser();
      const callback = await authorize(browser, gh.url);
      expect(new URL(callback).searchParams.get('iss')).toBe(idp.issuer);
      const before = grants();
      const keys = await sessionKeys();
      const res = await browser.fetch(withParams(callback, (p) => p.set('iss', iss)));
      await expectRefused(res, 400, 'bad_request');
      expect(grants()).toBe(before);
      expect((await sessionKeys()).length).toBe(keys.length);
      expect(await browser.fetch(`${gh.url}/auth/me`).then((r) => r.status)).toBe(401);
    }
  });

  it('checks iss on error responses too: an error naming another issuer is 400 bad_request, not login_failed', async () => {
    const browser = new Browser();
    const state = await beginLogin(browser, gh.url);
    const res = await browser.fetch(
      `${gh.url}/auth/callback?error=access_denied&state=${encodeURIComponent(state)}&iss=${encodeURIComponent('https://evil.example')}`,
    );
    await expectRefused(res, 400, 'bad_request');
    expect(await redis.exists(txKey(state))).toBe(0);
  });

  it('refuses a callback without iss when the IdP advertises RFC 9207 support (mix-up defence)', async () => {
    await refuseAltered((p) => p.delete('iss'), 400, 'bad_request');
  });

  it('refuses tokens in the callback query (injected implicit or hybrid response): 400 bad_request', async () => {
    for (const param of ['id_token', 'access_token', 'token']) {
      const { browser } = await refuseAltered((p) => p.set(param, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.'), 400, 'bad_request');
      expect(browser.cookie(gh.url, SESSION)).toBeUndefined();
    }
  });
});

describe('login start, cookies and concurrent logins', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;

  const grants = () => idp.events.get('grant.success') ?? 0;

  beforeAll(async () => {
    ({ idp, gh } = await startStage({ gatehouse: { redisUrl: inject('redisUrl') } }));
  });
  afterAll(async () => {
    await gh?.close();
    await idp?.close();
  });

  it('sends PKCE S256 and a fresh state and nonce on every login, and sets a short-lived Lax binding cookie', async () => {
    const browser = new Browser();
    const seen = { state: new Set<string>(), nonce: new Set<string>(), challenge: new Set<string>() };
    for (let i = 0; i < 3; i++) {
      const res = await browser.fetch(`${gh.url}/auth/login`);
      expect(res.status).toBe(302);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const location = new URL(res.headers.get('location') ?? '');
      expect(location.origin).toBe(idp.issuer);
      expect(location.searchParams.get('response_type')).toBe('code');
      expect(location.searchParams.get('code_challenge_method')).toBe('S256');
      expect(location.searchParams.get('redirect_uri')).toBe(`${gh.url}/auth/callback`);
      seen.state.add(location.searchParams.get('state') ?? '');
      seen.nonce.add(location.searchParams.get('nonce') ?? '');
      seen.challenge.add(location.searchParams.get('code_challenge') ?? '');
      const binding = res.headers.getSetCookie().find((c) => c.startsWith(BINDING)) ?? '';
      const attrs = binding.split(';').map((a) => a.trim());
      expect(attrs).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax']));
      expect(Number(attrs.find((a) => a.startsWith('Max-Age='))?.slice(8))).toBeLessThanOrEqual(600);
      expect(attrs.some((a) => /^domain=/i.test(a))).toBe(false);
    }
    for (const set of Object.values(seen)) {
      expect(set.size).toBe(3);
      for (const v of set) expect(v.length).toBeGreaterThanOrEqual(43);
    }
  });

  it('a successful callback sets a __Host- session cookie (Secure, HttpOnly, SameSite, Path=/, no Domain), clears the binding, and is no-store', async () => {
    const browser = new Browser();
    const callback = await authorize(browser, gh.url);
    const res = await browser.fetch(callback);
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const cookies = res.headers.getSetCookie();
    const session = cookies.find((c) => c.startsWith(`${SESSION}=`)) ?? '';
    const attrs = session.split(';').map((a) => a.trim());
    expect(attrs[0]).toMatch(new RegExp(`^${SESSION}=[A-Za-z0-9_-]{43}$`));
    expect(attrs).toEqual(
      expect.arrayContaining(['Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax', `Max-Age=${gh.config.session.maxAgeSeconds}`]),
    );
    expect(attrs.some((a) => /^domain=/i.test(a))).toBe(false);
    expect(cookies.some((c) => /^__Host-gh_login\.[\w-]+=;/.test(c) && /Max-Age=0/.test(c))).toBe(true);
  });

  it("refuses a stolen code injected with the attacker's own state (PKCE binds the code): 400 login_failed, no session", async () => {
    const victim = new Browser();
    const victimCallback = await authorize(victim, gh.url, 'alice');
    const stolenCode = new URL(victimCallback).searchParams.get('code') ?? '';

    const attacker = new Browser();
    const attackerCallback = await authorize(attacker, gh.url, 'mallory');
    const injected = withParams(attackerCallback, (p) => p.set('code', stolenCode));
    const before = grants();
    await expectRefused(await attacker.fetch(injected), 400, 'login_failed');
    expect(grants()).toBe(before);
    expect(attacker.cookie(gh.url, SESSION)).toBeUndefined();
    await expectError(await attacker.fetch(`${gh.url}/auth/me`), 401, 'unauthorized');
  });

  it('two tabs logging in at once: the second callback to arrive succeeds or fails cleanly, never a 5xx or a mixed session', async () => {
    const browser = new Browser();
    const tabA = await authorize(browser, gh.url);
    const tabB = await authorize(browser, gh.url);
    const b = await browser.fetch(tabB);
    expect(b.status).toBe(302);
    const sessionB = browser.cookie(gh.url, SESSION);
    const a = await browser.fetch(tabA);
    expect([302, 400]).toContain(a.status);
    if (a.status === 400) {
      await expectError(a, 400, 'invalid_state');
      expect(browser.cookie(gh.url, SESSION)).toBe(sessionB);
    }
    const me = await browser.fetch(`${gh.url}/auth/me`);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { sub: string } }).user.sub).toBe('alice');
  });
});
