import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Types only: the many fetch-based tests that import Browser never load playwright-core (useChromium loads it).
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach } from 'vitest';

/**
 * A scripted browser over fetch: one cookie jar per origin (Gatehouse's and the IdP's stay apart),
 * manual redirects, and the oidc-provider development login and consent forms filled in.
 */
export class Browser {
  readonly jars = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jars.get(origin)?.get(name);
  }

  setCookie(origin: string, name: string, value: string): void {
    if (!this.jars.has(origin)) this.jars.set(origin, new Map());
    this.jars.get(origin)?.set(name, value);
  }

  cookieHeader(url: string): string | undefined {
    const jar = this.jars.get(new URL(url).origin);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(url);
    if (cookie && !headers.has('cookie')) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    const origin = new URL(url).origin;
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (!this.jars.has(origin)) this.jars.set(origin, new Map());
      if (expired) this.jars.get(origin)?.delete(name);
      else this.jars.get(origin)?.set(name, value);
    }
    return res;
  }

  /**
   * Logs in through Gatehouse: /auth/login → IdP → login form → consent → callback.
   * Returns the final Location Gatehouse redirected to.
   */
  async login(gatehouseUrl: string, username = 'alice', next?: string): Promise<{ location: string; callbackStatus: number }> {
    let url = `${gatehouseUrl}/auth/login${next !== undefined ? `?next=${encodeURIComponent(next)}` : ''}`;
    let init: RequestInit = {};
    for (let step = 0; step < 25; step++) {
      const res = await this.fetch(url, init);
      init = {};
      const isCallback = url.startsWith(`${gatehouseUrl}/auth/callback`);
      if (isCallback) {
        await res.body?.cancel();
        return { location: res.headers.get('location') ?? '', callbackStatus: res.status };
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        url = new URL(res.headers.get('location') ?? '', url).href;
        continue;
      }
      const html = await res.text();
      if (res.status !== 200) throw new Error(`login step ${step} at ${url}: ${res.status} ${html.slice(0, 300)}`);
      const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
      if (!form) throw new Error(`no form at ${url}: ${html.slice(0, 300)}`);
      const body = new URLSearchParams();
      for (const input of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
        const name = /name="([^"]+)"/.exec(input[0])?.[1];
        if (!name) continue;
        const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
        body.set(name, name === 'login' ? username : name === 'password' ? 'any-password' : value);
      }
      url = new URL(form[1] ?? '', url).href;
      init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    }
    throw new Error('login did not finish in 25 steps');
  }
}

/**
 * Headless Chromium for the end-to-end tests (tests/e2e): Debian's /usr/bin/chromium driven by playwright-core
 * (no browser download). One browser per test file (useChromium), a context per scenario.
 */
export function useChromium(): () => Chromium {
  let browser: Chromium | undefined;
  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
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
        // Nothing leaves the machine: the dev IdP's pages import a web font, and waiting on DNS for it held each
        // IdP page's load event for seconds.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.*',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  // Whichever test fails, every page still open says what it saw.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(async ({ task }) => {
      for (const dump of [...openPages]) await dump(task.name);
    });
  });
  return () => {
    if (!browser) throw new Error('useChromium: the browser is launched in beforeAll');
    return browser;
  };
}

/** The failure dumps of the tracked pages still open (one test file per process, so one set per file). */
const openPages = new Set<(testName: string) => Promise<void>>();
/** Screenshots taken so far per suite: numbered in the order taken, across the suite's pages. */
const shotsTaken = new Map<string, number>();

/** Where screenshots and failure logs go: test-artifacts/ is ignored by git. */
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/e2e/', import.meta.url));

export interface TrackedPage {
  readonly page: Page;
  /** Every console message and every response or failed request so far, one line each. */
  readonly log: string[];
  /** A screenshot of this step, test-artifacts/e2e/<suite>/<nn>-<step>.png. */
  snap(step: string): Promise<void>;
}

/**
 * A page in `context` whose console and network traffic are recorded; when the running test fails, the record
 * is written next to its screenshots (and printed), so a failure in CI says what the browser saw.
 */
export async function trackedPage(context: BrowserContext, suite: string): Promise<TrackedPage> {
  const page = await context.newPage();
  // Well inside the test's own timeout, so a step that never happens fails with its own message and the page log.
  page.setDefaultTimeout(10_000);
  const log: string[] = [];
  const dir = join(ARTIFACTS, suite);
  if (!shotsTaken.has(suite)) {
    // A fresh folder per run: no screenshot or failure log of an earlier run is mistaken for this one's.
    rmSync(dir, { recursive: true, force: true });
    shotsTaken.set(suite, 0);
  }
  mkdirSync(dir, { recursive: true });
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (err) => log.push(`pageerror: ${err.message}`));
  page.on('response', (r) => log.push(`${r.status()} ${r.request().method()} ${r.url()}`));
  page.on('requestfailed', (r) => log.push(`failed ${r.method()} ${r.url()}: ${r.failure()?.errorText ?? ''}`));
  const dump = async (testName: string) => {
    const name = `failed-${testName.replace(/[^\w-]+/g, '-').slice(0, 60)}-${openPages.size}`;
    writeFileSync(join(dir, `${name}.log`), `${page.url()}\n${log.join('\n')}\n`);
    process.stderr.write(`\n[e2e ${suite}] page ${page.url()}; console and network:\n  ${log.join('\n  ')}\n`);
    await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true }).catch(() => undefined);
  };
  openPages.add(dump);
  page.once('close', () => openPages.delete(dump));
  return {
    page,
    log,
    async snap(step) {
      const shots = (shotsTaken.get(suite) ?? 0) + 1;
      shotsTaken.set(suite, shots);
      const file = `${String(shots).padStart(2, '0')}-${step.replace(/[^\w-]+/g, '-')}.png`;
      await page.screenshot({ path: join(dir, file) });
    },
  };
}

/** Fills oidc-provider's development login form (any password) and submits it. */
export async function submitIdpLogin(page: Page, username: string): Promise<void> {
  await page.waitForSelector('input[name=login]');
  await page.fill('input[name=login]', username);
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
}

/** Logs in from the demo SPA's page at `baseUrl`: its "Log in" button, the IdP's form, back to the SPA signed in. */
export async function spaLogin(page: Page, baseUrl: string, username: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.click('#login');
  await submitIdpLogin(page, username);
  await page.waitForURL(`${baseUrl}/`);
  await page.waitForSelector('#signed-in', { state: 'visible' });
}
