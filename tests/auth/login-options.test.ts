import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { removeCookies } from '../../src/session/cookie.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import type { TestIdp } from '../helpers/idp.ts';
import { startStage } from '../helpers/stage.ts';

const BINDING = '__Host-gh_login.';

/** /auth/login's SPA-facing options (prompt, login_hint) and its one-cookie-per-login binding. */
describe('/auth/login options and login-binding cookies', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;

  beforeAll(async () => {
    ({ idp, gh } = await startStage({ gatehouse: { redisUrl: inject('redisUrl') } }));
  });
  afterAll(async () => {
    await gh?.close();
    await idp?.close();
  });

  const authorizationRequest = async (query: string) => {
    const res = await new Browser().fetch(`${gh.url}/auth/login?${query}`);
    expect(res.status).toBe(302);
    return new URL(res.headers.get('location') ?? '').searchParams;
  };

  it('passes prompt (replacing OIDC_PROMPT) and login_hint on to the IdP', async () => {
    for (const prompt of ['none', 'login', 'consent', 'select_account']) {
      expect((await authorizationRequest(`prompt=${prompt}`)).get('prompt')).toBe(prompt);
    }
    const params = await authorizationRequest('prompt=login&login_hint=bob%40example.test');
    expect(params.get('login_hint')).toBe('bob@example.test');
    // Without one, the configured prompt (the test Gatehouse sets OIDC_PROMPT=consent).
    expect((await authorizationRequest('next=/')).get('prompt')).toBe('consent');
  });

  it('refuses a prompt outside the allowlist, a repeated one, and a bad login_hint: 400 bad_request naming the parameter', async () => {
    for (const query of [
      'prompt=none%20login',
      'prompt=create',
      'prompt=none&prompt=login',
      'login_hint=',
      `login_hint=${'a'.repeat(257)}`,
      'login_hint=a%0Ab',
    ]) {
      const res = await new Browser().fetch(`${gh.url}/auth/login?${query}`);
      const body = (await res.clone().json()) as { parameter?: string };
      await expectError(res, 400, 'bad_request', query);
      expect(body.parameter, query).toBe(query.startsWith('prompt') ? 'prompt' : 'login_hint');
    }
  });

  it('a failing prompt=none comes back to next signed out, not as an error', async () => {
    const browser = new Browser();
    const start = await browser.fetch(`${gh.url}/auth/login?prompt=none&next=%2Fafter`);
    let url = start.headers.get('location') ?? '';
    // The IdP has no session for this browser: it answers login_required at once, to the callback.
    for (let step = 0; step < 5 && !url.startsWith(`${gh.url}/auth/callback`); step++) {
      const res = await browser.fetch(url);
      url = new URL(res.headers.get('location') ?? '', url).href;
    }
    expect(new URL(url).searchParams.get('error')).toBe('login_required');
    const callback = await browser.fetch(url);
    expect(callback.status).toBe(302);
    expect(callback.headers.get('location')).toBe('/after');
    expect(callback.headers.getSetCookie().some((c) => c.startsWith(gh.config.session.cookieName))).toBe(false);
    expect((await browser.fetch(`${gh.url}/auth/me`)).status).toBe(401);
  });

  it('gives each login its own binding cookie, and keeps at most 4 pending by clearing the oldest', async () => {
    const browser = new Browser();
    for (let i = 0; i < 3; i++) await browser.fetch(`${gh.url}/auth/login`);
    const names = () => [...(browser.jars.get(gh.url)?.keys() ?? [])].filter((n) => n.startsWith(BINDING));
    const first = names();
    expect(first).toHaveLength(3);
    const fourth = await browser.fetch(`${gh.url}/auth/login`);
    expect(fourth.headers.getSetCookie().filter((c) => /Max-Age=0/.test(c))).toEqual([]);
    expect(names()).toHaveLength(4);
    const fifth = await browser.fetch(`${gh.url}/auth/login`);
    const cleared = fifth.headers.getSetCookie().filter((c) => /Max-Age=0/.test(c));
    expect(cleared).toHaveLength(1);
    expect(cleared[0]?.startsWith(`${first[0]}=;`)).toBe(true);
    expect(names()).toHaveLength(4);
  });

  it('strips every per-login binding cookie, not only the base name, from what a backend sees', () => {
    expect(removeCookies(`a=1; ${BINDING}abc=x; __Host-gh_login=y; __Host-gh_loginx=z; b=2`, ['__Host-gh_login'])).toBe(
      'a=1; __Host-gh_loginx=z; b=2',
    );
  });
});
