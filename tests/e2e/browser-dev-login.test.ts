/// <reference lib="dom" />
import { spawn, type ChildProcess } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.ts';

/** What a newcomer does after `npm start`: open the page in a real browser, log in, call the API, log out. */
describe('npm start in a real browser (headless Chromium)', () => {
  let child: ChildProcess;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
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
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('logs in through the dev IdP, calls /api and a WebSocket, and logs out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('#login', { state: 'visible' });
    await page.click('#login');
    await page.fill('input[name=login]', 'newcomer');
    await page.fill('input[name=password]', 'anything');
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.pathname.includes('/interaction/') || u.origin === base);
    if (new URL(page.url()).pathname.includes('/interaction/')) await page.click('button[type=submit]');
    await page.waitForSelector('#signed-in', { state: 'visible' });
    expect(await page.textContent('#who')).toBe('Newcomer');

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
    expect(api.body.headers['cookie'] ?? '').not.toContain('gh_session');

    await page.click('#open-ws');
    await page.waitForFunction(() => document.getElementById('output')?.textContent?.includes('close:'));
    expect(await page.textContent('#output')).toContain('message: hello through Gatehouse');

    await page.click('#logout');
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('#signed-out', { state: 'visible' });
    const me = await page.evaluate(async () => (await fetch('/auth/me')).status);
    expect(me).toBe(401);
    await context.close();
  });
});
