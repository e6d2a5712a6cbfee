/// <reference lib="dom" />
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitIdpLogin, trackedPage, useChromium } from '../helpers/browser.ts';
import { freePort } from '../helpers/ports.ts';

/** What a newcomer does after `npm start`: open the page in a real browser, log in, call the API, log out. */
describe('npm start in a real browser (headless Chromium)', () => {
  const chromium = useChromium();
  let child: ChildProcess;
  let base: string;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    base = `http://localhost:${port}`;
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/tmp',
      PORT: String(port),
      HOST: '127.0.0.1',
      DEV_BACKEND_PORT: '0',
      LOG_LEVEL: 'warn',
      SHUTDOWN_DELAY_SECONDS: '0',
    };
    child = spawn(process.execPath, ['src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ready = await fetch(`${base}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error('gatehouse did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('logs in through the dev IdP, calls /api and a WebSocket, and logs out', async () => {
    const context = await chromium().newContext();
    const tab = await trackedPage(context, 'npm-start');
    const page = tab.page;
    const visited: string[] = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) visited.push(f.url());
    });
    // Opened at 127.0.0.1 while the base URL is localhost: sent to the base URL before any login starts.
    await page.goto(`http://127.0.0.1:${port}/`);
    expect(page.url()).toBe(`${base}/`);
    await page.waitForSelector('#login', { state: 'visible' });
    await tab.snap('demo-signed-out');
    await page.click('#login');
    await page.waitForSelector('input[name=login]');
    await tab.snap('dev-idp-login');
    await submitIdpLogin(page, 'newcomer');
    // One form and straight back: no consent screen in development.
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('#signed-in', { state: 'visible' });
    expect(visited.filter((u) => u.includes('/interaction/'))).toHaveLength(1);
    expect(await page.textContent('#who')).toBe('Newcomer');
    await tab.snap('demo-signed-in');

    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === 'gh_session');
    expect(session?.httpOnly).toBe(true);
    expect(await page.evaluate(() => document.cookie)).not.toContain('gh_session');

    await page.click('#call-api');
    await page.waitForFunction(() => document.getElementById('output')?.textContent?.includes('x-user-sub'));
    const api = JSON.parse((await page.textContent('#output')) ?? '{}') as {
      'GET /api/hello': number;
      body: { headers: Record<string, string> };
    };
    expect(api['GET /api/hello']).toBe(200);
    expect(api.body.headers['x-user-sub']).toBe('newcomer');
    expect(api.body.headers['authorization']).toMatch(/^Bearer /);
    // Neither Gatehouse's cookies nor the dev IdP's (kept under /dev-idp) reach the backend.
    expect(api.body.headers['cookie'] ?? '').not.toMatch(/gh_session|gh_login|_session|_interaction/);

    await page.click('#open-ws');
    await page.waitForFunction(() => document.getElementById('output')?.textContent?.includes('close:'));
    expect(await page.textContent('#output')).toContain('message: hello through Gatehouse');

    await page.click('#logout');
    await page.waitForURL((u) => u.pathname.startsWith('/dev-idp/'));
    // No confirmation page here: the IdP shares Gatehouse's origin in development, so the logout's Clear-Site-Data
    // already removed its cookie, and it sends the browser straight back.
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('#signed-out', { state: 'visible' });
    await tab.snap('demo-logged-out');
    // The demo page itself loads without a 404 (its favicon included) and without a CSP refusal.
    expect(tab.log.filter((l) => l.startsWith(`404 GET ${base}/`) && !l.includes('/dev-idp/'))).toEqual([]);
    expect(tab.log.filter((l) => l.includes('Content Security Policy'))).toEqual([]);
    const me = await page.evaluate(async () => (await fetch('/auth/me')).status);
    expect(me).toBe(401);
    await context.close();
  });
});
