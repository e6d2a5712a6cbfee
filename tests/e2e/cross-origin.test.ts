/// <reference lib="dom" />
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startDemoBackend, type DemoBackend } from '../../src/dev/backend.ts';
import { spaLogin, trackedPage, useChromium, type TrackedPage } from '../helpers/browser.ts';
import { startStage, type Stage } from '../helpers/stage.ts';

const SUITE = 'cross-origin';
const PUBLIC_DIR = fileURLToPath(new URL('../../public', import.meta.url));

/** A page of another origin: an empty document scripts are evaluated in. */
async function startOrigin(host: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      '<!doctype html><html><head><link rel="icon" href="data:,"><title>another origin</title></head><body>another origin</body></html>',
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What a script on `page` gets from a credentialed fetch: the status and body it could read, or the error it got. */
function credentialedFetch(
  page: Page,
  url: string,
  init: { method?: string } = {},
): Promise<{ read?: { status: number; body: string }; refused?: string }> {
  return page.evaluate(
    async ([target, method]) => {
      try {
        const r = await fetch(target, { credentials: 'include', ...(method ? { method, body: '{"a":1}' } : {}) });
        return { read: { status: r.status, body: await r.text() } };
      } catch (err) {
        return { refused: (err as Error).name };
      }
    },
    [url, init.method] as const,
  );
}

/**
 * Pages on other origins in the same browser as a logged-in user. "Another site" is 127.0.0.3 (the session cookie,
 * SameSite=Lax, is not sent from it); "the same site" is 127.0.0.1 on another port, a sibling origin whose requests
 * do carry the cookie, so Gatehouse's own defences (CORS, CSRF, the WebSocket Origin check) are what refuse them.
 */
describe('other origins in the same browser as a logged-in user', () => {
  const chromium = useChromium();
  let backend: DemoBackend;
  let stage: Stage;
  let gh: string;
  let user: BrowserContext;
  let tab: TrackedPage;
  const origins: Record<'sibling' | 'otherSite' | 'allowed', { url: string; close(): Promise<void> }> = {} as never;

  beforeAll(async () => {
    backend = await startDemoBackend({ port: 0 });
    origins.sibling = await startOrigin('127.0.0.1');
    origins.otherSite = await startOrigin('127.0.0.3');
    origins.allowed = await startOrigin('127.0.0.1');
    stage = await startStage({
      idp: { host: '127.0.0.2' },
      gatehouse: {
        redisUrl: inject('redisUrl'),
        yaml: `allowedOrigins: ["${origins.allowed.url}"]\nmappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`,
        env: { PUBLIC_DIR, OIDC_PROMPT: '' },
      },
    });
    gh = stage.gh.url;
    user = await chromium().newContext();
    tab = await trackedPage(user, SUITE);
    await spaLogin(tab.page, gh, 'alice');
  });
  afterAll(async () => {
    await user?.close();
    await stage?.close();
    await backend?.close();
    await Promise.all(Object.values(origins).map((o) => o.close()));
  });

  /** The response headers Gatehouse sent to `page` for `path` (a response the page's script was allowed to read). */
  const answeredHeaders = (page: Page, path: string) => {
    const headers = page.waitForResponse((r) => r.url().startsWith(`${gh}${path}`)).then((r) => r.allHeaders());
    headers.catch(() => undefined);
    return headers;
  };

  it('a page on another site, or another origin of the same site, cannot read /api responses; its credentialed fetch gets no CORS headers', async () => {
    const cookie = (await user.cookies(gh)).map((c) => `${c.name}=${c.value}`).join('; ');
    for (const origin of [origins.otherSite, origins.sibling]) {
      await tab.page.goto(`${origin.url}/`);
      expect(await credentialedFetch(tab.page, `${gh}/api/hello`)).toEqual({ refused: 'TypeError' });
      // Chromium reports no response for a fetch CORS refused, so what Gatehouse sends such a request is asked directly.
      const res = await fetch(`${gh}/api/hello`, { headers: { origin: origin.url, cookie } });
      await res.body?.cancel();
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    }
    await tab.snap('foreign-origin-fetch-refused');
  });

  it('a WebSocket from another origin of the same site, cookie and all, is refused (Origin)', async () => {
    await tab.page.goto(`${origins.sibling.url}/`);
    const outcome = await tab.page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.addEventListener('open', () => resolve('open'));
          ws.addEventListener('close', (e) => resolve(`close ${e.code}`));
        }),
      `${gh.replace('http:', 'ws:')}/api/ws`,
    );
    expect(outcome).toBe('close 1006');
    expect(stage.gh.logs.filter((l) => l['msg'] === 'websocket refused').map((l) => l['code'])).toContain('origin_not_allowed');
  });

  // Needs the CSRF check on /api (edge-policy feature): 403 {"error":"csrf"} for a cookie-authenticated unsafe method
  // from another origin.
  it("another origin's cross-origin POST with the user's cookie is refused (CSRF): 403 csrf", async () => {
    await tab.page.goto(`${origins.sibling.url}/`);
    // A plain HTML form: no preflight, no custom header, the cookie attached (same site): the classic CSRF.
    const answer = tab.page.waitForResponse((r) => r.url() === `${gh}/api/hello` && r.request().method() === 'POST');
    await tab.page.evaluate((action) => {
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = action;
      form.enctype = 'text/plain';
      const input = document.createElement('input');
      input.name = '{"a":1, "b":"';
      input.value = '"}';
      form.append(input);
      document.body.append(form);
      form.submit();
    }, `${gh}/api/hello`);
    const res = await answer;
    expect(res.status()).toBe(403);
    expect(JSON.parse(await res.text())).toMatchObject({ error: 'csrf' });
    await tab.snap('cross-origin-post-refused');
  });

  // Needs CORS on /api (edge-policy feature): allowedOrigins in config.yml lists this origin.
  it("an allowed origin's SPA calls /api with credentials through CORS", async () => {
    await tab.page.goto(`${origins.allowed.url}/`);
    const headers = answeredHeaders(tab.page, '/api/hello');
    const got = await credentialedFetch(tab.page, `${gh}/api/hello`);
    expect(got.read?.status).toBe(200);
    expect((JSON.parse(got.read?.body ?? '{}') as { headers: Record<string, string> }).headers['x-user-sub']).toBe('alice');
    const sent = await headers;
    expect(sent['access-control-allow-origin']).toBe(origins.allowed.url);
    expect(sent['access-control-allow-credentials']).toBe('true');
  });
});
