import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';

const SESSION = '__Host-gh_session';

describe('logout (POST /auth/logout)', () => {
  const stage = useStage();
  let endSessionEndpoint: string;

  const storeKey = (id: string) => `${stage.gh.config.redis.keyPrefix}s:${createHash('sha256').update(id).digest('base64url')}`;
  const me = (cookie: string) => fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${cookie}` } });
  const loggedIn = async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'alice');
    const cookie = browser.cookie(stage.gh.url, SESSION);
    if (!cookie) throw new Error('no session cookie after login');
    return { browser, cookie };
  };

  beforeAll(async () => {
    const discovery = (await (await fetch(`${stage.idp.issuer}/.well-known/openid-configuration`)).json()) as {
      end_session_endpoint: string;
    };
    endSessionEndpoint = discovery.end_session_endpoint;
  });

  it('destroys the session, clears the cookie and the browser state, and returns the IdP end-session URL', async () => {
    const { browser, cookie } = await loggedIn();
    expect(await stage.redis.exists(storeKey(cookie))).toBe(1);

    const res = await browser.fetch(`${stage.gh.url}/auth/logout`, {
      method: 'POST',
      headers: { origin: stage.gh.url, 'sec-fetch-site': 'same-origin' },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; logoutUrl: string };
    expect(body.ok).toBe(true);

    const logoutUrl = new URL(body.logoutUrl);
    expect(`${logoutUrl.origin}${logoutUrl.pathname}`).toBe(endSessionEndpoint);
    expect(logoutUrl.searchParams.get('post_logout_redirect_uri')).toBe(`${stage.gh.url}/`);
    expect(logoutUrl.searchParams.get('client_id')).toBe(stage.idp.clientId);
    expect(logoutUrl.searchParams.get('id_token_hint')).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);

    const cleared = res.headers.getSetCookie().find((c) => c.startsWith(`${SESSION}=`));
    expect(cleared).toBeDefined();
    const attrs = (cleared ?? '').split(';').map((a) => a.trim());
    expect(attrs[0]).toBe(`${SESSION}=`);
    expect(attrs).toContain('Max-Age=0');
    expect(attrs).toContain('Path=/');
    expect(attrs).toContain('Secure');
    expect(attrs).toContain('HttpOnly');
    expect(attrs.some((a) => /^domain=/i.test(a))).toBe(false);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const clearSiteData = (res.headers.get('clear-site-data') ?? '').split(',').map((s) => s.trim());
    expect(clearSiteData).toEqual(expect.arrayContaining(['"cache"', '"cookies"', '"storage"']));

    const replay = await me(cookie);
    await expectError(replay, 401, 'unauthorized');
    expect(await stage.redis.exists(storeKey(cookie))).toBe(0);
    expect(browser.cookie(stage.gh.url, SESSION)).toBeUndefined();

    // The IdP accepts what we sent it (a valid id_token_hint and a registered post-logout URI).
    const atIdp = await browser.fetch(body.logoutUrl);
    expect(atIdp.status).toBe(200);
    await atIdp.body?.cancel();
  });

  it('without a session still answers 200 and clears the cookie (a logged-out page always clears it)', async () => {
    const res = await fetch(`${stage.gh.url}/auth/logout`, { method: 'POST', headers: { origin: stage.gh.url } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { logoutUrl?: string }).logoutUrl).toBeUndefined();
    expect(res.headers.getSetCookie().some((c) => c.startsWith(`${SESSION}=;`) && /Max-Age=0/.test(c))).toBe(true);
  });

  it.each(['GET', 'PUT', 'DELETE'])(
    '%s /auth/logout is 405 method_not_allowed with Allow: POST, and the session survives',
    async (method) => {
      const { cookie } = await loggedIn();
      const res = await fetch(`${stage.gh.url}/auth/logout`, { method, headers: { cookie: `${SESSION}=${cookie}` } });
      await expectError(res, 405, 'method_not_allowed');
      expect(res.headers.get('allow')).toBe('POST');
      expect(res.headers.getSetCookie().filter((c) => c.startsWith(`${SESSION}=`))).toEqual([]);
      expect((await me(cookie)).status).toBe(200);
    },
  );

  it.each([
    ['Origin: https://evil.example', { origin: 'https://evil.example' }],
    ['Origin: null', { origin: 'null' }],
    ['a suffix-spoofed Origin', { origin: 'http://127.0.0.1.evil.example' }],
    ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['a same Origin but Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site', origin: 'SELF' }],
  ])('a cross-site POST (%s) is 403 origin_not_allowed and the session still works', async (_name, headers) => {
    const { cookie } = await loggedIn();
    const sent: Record<string, string> = { cookie: `${SESSION}=${cookie}` };
    for (const [k, v] of Object.entries(headers)) sent[k] = v === 'SELF' ? stage.gh.url : v;
    const res = await fetch(`${stage.gh.url}/auth/logout`, { method: 'POST', headers: sent });
    await expectError(res, 403, 'origin_not_allowed');
    expect(res.headers.getSetCookie().filter((c) => c.startsWith(`${SESSION}=`))).toEqual([]);
    expect(res.headers.get('clear-site-data')).toBeNull();
    expect((await me(cookie)).status).toBe(200);
    expect(await stage.redis.exists(storeKey(cookie))).toBe(1);
  });
});
