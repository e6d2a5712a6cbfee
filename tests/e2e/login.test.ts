/// <reference lib="dom" />
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startDemoBackend, type DemoBackend } from '../../src/dev/backend.ts';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { submitIdpLogin, trackedPage, useChromium, type TrackedPage } from '../helpers/browser.ts';
import { testClock } from '../helpers/clock.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startStage, type Stage } from '../helpers/stage.ts';

const SUITE = 'login';
const PUBLIC_DIR = fileURLToPath(new URL('../../public', import.meta.url));
const SESSION = '__Host-gh_session';

/**
 * The demo SPA (public/) in headless Chromium, as a user meets it: Gatehouse on 127.0.0.1, a real oidc-provider on
 * 127.0.0.2 (another site, as a real IdP is), real Redis and the demo backend (echo, SSE, WebSocket).
 */
describe('the SPA in a real browser: login, /api, SSE, WebSocket, expiry, prompt=none, two tabs, logout', () => {
  const chromium = useChromium();
  const clock = testClock();
  let backend: DemoBackend;
  let stage: Stage;
  let gh: string;
  /** Alice's browser, kept from the first login on through the scenarios that follow it. */
  let alice: BrowserContext;
  let tab: TrackedPage;

  const page = () => tab.page;
  const signedIn = () => page().waitForSelector('#signed-in', { state: 'visible' });
  const output = () =>
    page()
      .textContent('#output')
      .then((t) => t ?? '');

  beforeAll(async () => {
    backend = await startDemoBackend({ port: 0 });
    stage = await startStage({
      idp: { host: '127.0.0.2' },
      gatehouse: {
        redisUrl: inject('redisUrl'),
        now: clock.now,
        yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`,
        // The IdP's own default (no prompt): one login form, no consent screen.
        env: { PUBLIC_DIR, OIDC_PROMPT: '' },
      },
    });
    gh = stage.gh.url;
    alice = await chromium().newContext();
    tab = await trackedPage(alice, SUITE);
  });
  afterAll(async () => {
    await alice?.close();
    await stage?.close();
    await backend?.close();
  });

  it('logs in through the IdP form and lands on the requested path; the cookie is httpOnly, SameSite as configured and hidden from scripts; no token reaches the page', async () => {
    const bodies: string[] = [];
    page().on('response', (r) => {
      if (r.url().startsWith(gh) && !(r.headers()['content-type'] ?? '').includes('event-stream')) {
        r.text().then(
          (t) => bodies.push(t),
          () => undefined,
        );
      }
    });
    await page().goto(`${gh}/orders/42?tab=items`);
    await page().waitForSelector('#signed-out', { state: 'visible' });
    await tab.snap('signed-out');
    await page().click('#login');
    await page().waitForURL((u) => u.host.startsWith('127.0.0.2:'));
    await tab.snap('idp-login-form');
    await submitIdpLogin(page(), 'alice');
    // Straight back: no consent screen after the login form.
    await page().waitForURL(`${gh}/orders/42?tab=items`);
    await signedIn();
    await tab.snap('signed-in');
    expect(await page().textContent('#who')).toBe('Alice');
    expect(await page().textContent('#idle-for')).toBe('8 hours');
    expect(await page().textContent('#absolute-ends')).not.toBe('');

    const cookies = await alice.cookies(gh);
    const session = cookies.find((c) => c.name === SESSION);
    expect(session).toMatchObject({ httpOnly: true, sameSite: stage.gh.config.session.sameSite, path: '/' });
    // Every login-binding cookie was cleared by the callback.
    expect(cookies.filter((c) => c.name.includes('gh_login'))).toEqual([]);
    expect(await page().evaluate(() => document.cookie)).not.toContain('gh_');

    const stored = await stage.gh.app.sessions.load(parseSessionSecret(session?.value));
    const tokens = Object.values(stored?.tokens ?? {}).filter((t): t is string => typeof t === 'string' && t.length > 0);
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    const visible = await page().evaluate(async () => ({
      html: document.documentElement.outerHTML,
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      indexedDb: JSON.stringify(await indexedDB.databases()),
      globals: JSON.stringify(
        Object.keys(window)
          .map((k) => (window as unknown as Record<string, unknown>)[k])
          .filter((v) => typeof v === 'string'),
      ),
    }));
    expect(visible.indexedDb).toBe('[]');
    await page().click('#call-api');
    await page().waitForFunction(() => document.getElementById('output')?.textContent?.includes('x-user-sub'));
    const seen = [...Object.values(visible), ...bodies, await output()].join('\n');
    for (const token of tokens) expect(seen.includes(token), 'a token reached the page').toBe(false);
    expect(seen).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    // Under Gatehouse's CSP, with a favicon: nothing refused, nothing missing.
    expect(tab.log.filter((l) => /Content Security Policy|^404 /.test(l))).toEqual([]);
  });

  it('calls /api, streams server-sent events and relays a WebSocket with the cookie alone; backends see no Gatehouse or IdP cookie', async () => {
    await page().click('#call-api');
    await page().waitForFunction(() => document.getElementById('output')?.textContent?.includes('x-user-sub'));
    const api = JSON.parse(await output()) as { 'GET /api/hello': number; body: { headers: Record<string, string> } };
    expect(api['GET /api/hello']).toBe(200);
    expect(api.body.headers['x-user-sub']).toBe('alice');
    expect(api.body.headers['authorization']).toMatch(/^Bearer …/);
    expect(api.body.headers['cookie'] ?? '').not.toMatch(/gh_session|gh_login|_session|_interaction/);

    await page().click('#open-sse');
    await page().waitForFunction(() => document.getElementById('output')?.textContent?.includes('closed'));
    expect(await output()).toMatch(/event 1: .*\n.*event 2: .*\n.*event 3: /);

    await page().click('#open-ws');
    await page().waitForFunction(() => document.getElementById('output')?.textContent?.includes('close:'));
    expect(await output()).toContain('message: {"hello":"alice"}');
    expect(await output()).toContain('message: hello through Gatehouse');
    await tab.snap('api-sse-websocket');
  });

  it('after the idle timeout the next /api call gets 401, the page says so, and logging in again returns to the same path', async () => {
    clock.advance((stage.gh.config.session.idleTtlSeconds + 60) * 1000);
    await page().click('#call-api');
    await page().waitForSelector('#status', { state: 'visible' });
    expect(await page().textContent('#status')).toContain('Your session has ended (unauthorized)');
    expect(JSON.parse(await output())).toMatchObject({ 'GET /api/hello': 401, body: { error: 'unauthorized' } });
    await page().waitForSelector('#signed-out', { state: 'visible' });
    await tab.snap('session-expired');
    await page().click('#login-again');
    // The IdP session is still there: no form, straight back to where the user was.
    await page().waitForURL(`${gh}/orders/42?tab=items`);
    await signedIn();
    await tab.snap('logged-in-again');
  });

  it('prompt=none signs in without a form while the IdP session lasts, and comes back cleanly signed out without one', async () => {
    await alice.clearCookies({ domain: '127.0.0.1' });
    await page().goto(`${gh}/silent`);
    await page().waitForSelector('#signed-out', { state: 'visible' });
    await page().click('#login-silent');
    await page().waitForURL(`${gh}/silent`);
    await signedIn();
    await tab.snap('prompt-none-with-idp-session');

    const stranger = await chromium().newContext();
    try {
      const other = await trackedPage(stranger, SUITE);
      await other.page.goto(`${gh}/silent`);
      await other.page.waitForSelector('#signed-out', { state: 'visible' });
      await other.page.click('#login-silent');
      await other.page.waitForURL(`${gh}/silent`);
      await other.page.waitForSelector('#status', { state: 'visible' });
      expect(await other.page.textContent('#status')).toContain('no session for you (prompt=none)');
      expect(await other.page.isVisible('#signed-out')).toBe(true);
      await other.snap('prompt-none-without-idp-session');
    } finally {
      await stranger.close();
    }
  });

  it('two tabs that start a login at the same time both finish, each landing where it started', async () => {
    const browser = await chromium().newContext();
    try {
      const a = await trackedPage(browser, SUITE);
      const b = await trackedPage(browser, SUITE);
      for (const [t, path] of [
        [a, '/tab-a'],
        [b, '/tab-b'],
      ] as const) {
        await t.page.goto(`${gh}${path}`);
        await t.page.click('#login');
        await t.page.waitForSelector('input[name=login]');
      }
      // Both logins are pending at once, each with a binding cookie of its own.
      expect((await browser.cookies(gh)).filter((c) => c.name.startsWith('__Host-gh_login.'))).toHaveLength(2);
      await submitIdpLogin(a.page, 'bob');
      await a.page.waitForURL(`${gh}/tab-a`);
      await a.page.waitForSelector('#signed-in', { state: 'visible' });
      await submitIdpLogin(b.page, 'bob');
      await b.page.waitForURL(`${gh}/tab-b`);
      await b.page.waitForSelector('#signed-in', { state: 'visible' });
      await a.snap('tab-a-signed-in');
      await b.snap('tab-b-signed-in');
    } finally {
      await browser.close();
    }
  });

  it('a login that fails in the browser shows a page with "Log in again"; the same URL fetched by script gets JSON', async () => {
    const forged = `${gh}/auth/callback?state=forged-state-value&code=x`;
    const res = await page().goto(forged);
    expect(res?.status()).toBe(400);
    expect(res?.headers()['content-type']).toContain('text/html');
    expect(await page().textContent('#code')).toBe('invalid_state');
    expect(await page().getAttribute('#login-again', 'href')).toBe(`${gh}/auth/login`);
    await tab.snap('login-error-page');
    const fetched = await page().evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as { error: string } };
    }, forged);
    expect(fetched).toMatchObject({ status: 400, body: { error: 'invalid_state' } });
    expect(fetched.type).toContain('application/json');
    await page().goto(`${gh}/`);
    await signedIn();
  });

  it('logout returns the SPA to signed out, ends the IdP session, and the old cookie replayed gets 401', async () => {
    const old = (await alice.cookies(gh)).find((c) => c.name === SESSION)?.value;
    expect(old).toBeDefined();
    await page().click('#logout');
    await page().waitForURL((u) => u.host.startsWith('127.0.0.2:'));
    await tab.snap('idp-logout-confirm');
    await page().click('button[name=logout]');
    await page().waitForURL(`${gh}/`);
    await page().waitForSelector('#signed-out', { state: 'visible' });
    await tab.snap('signed-out-after-logout');
    // The IdP session is gone too: a silent login finds none.
    await page().click('#login-silent');
    await page().waitForSelector('#status', { state: 'visible' });
    expect(await page().textContent('#status')).toContain('no session for you');
    await expectError(await fetch(`${gh}/api/hello`, { headers: { cookie: `${SESSION}=${old}` } }), 401, 'unauthorized');
  });
});
