import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { useStage } from '../helpers/stage.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { startBackend } from '../helpers/backends.ts';

const SESSION = '__Host-gh_session';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Remembers every URL it visited. */
class RecordingBrowser extends Browser {
  readonly visited: string[] = [];
  override async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    this.visited.push(url);
    return super.fetch(url, init);
  }
}

describe('request ids and what never reaches the logs', () => {
  const received: IncomingHttpHeaders[] = [];
  const stage = useStage({
    backends: {
      backend: () =>
        startBackend((req, res) => {
          received.push(req.headers);
          res.setHeader('content-type', 'application/json');
          res.end('{"ok":true}');
          return true;
        }),
    },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
    gatehouse: { env: { LOG_LEVEL: 'trace' } },
  });

  it.each(['/healthz', '/auth/me', '/api/orders'])('echoes a well-formed X-Request-Id on %s and passes it to the logs', async (path) => {
    const id = `trace-${path.replace(/\W/g, '')}.01:AB_cd-9`;
    const res = await fetch(`${stage.gh.url}${path}`, { headers: { 'x-request-id': id } });
    await res.body?.cancel();
    expect(res.headers.get('x-request-id')).toBe(id);
    expect(stage.gh.logs.some((l) => l['reqId'] === id)).toBe(true);
  });

  it.each([
    ['spaces', 'has some spaces'],
    ['300 characters', 'a'.repeat(300)],
    ['a log-forging payload', 'x","level":60,"msg":"forged'],
    ['non-ASCII', 'idé'],
  ])('replaces a malformed X-Request-Id (%s) with a fresh one, on Express routes and the proxy alike', async (_name, bad) => {
    for (const path of ['/healthz', '/api/orders']) {
      const res = await fetch(`${stage.gh.url}${path}`, { headers: { 'x-request-id': bad } });
      await res.body?.cancel();
      const id = res.headers.get('x-request-id') ?? '';
      expect(id).toMatch(UUID);
      expect(stage.gh.logs.some((l) => l['reqId'] === id)).toBe(true);
    }
    expect(JSON.stringify(stage.gh.logs)).not.toContain(JSON.stringify(bad).slice(1, -1));
  });

  it('after a login, an API call, a refused callback replay and a logout, no log line holds a cookie, token, code or secret', async () => {
    const browser = new RecordingBrowser();
    await browser.login(stage.gh.url, 'alice');
    const cookie = browser.cookie(stage.gh.url, SESSION) ?? '';
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const callback = browser.visited.find((u) => u.startsWith(`${stage.gh.url}/auth/callback?`)) ?? '';
    const code = new URL(callback).searchParams.get('code') ?? '';
    const state = new URL(callback).searchParams.get('state') ?? '';
    expect(code.length).toBeGreaterThan(10);

    const before = received.length;
    const api = await browser.fetch(`${stage.gh.url}/api/orders?id=1`);
    expect(api.status).toBe(200);
    await api.body?.cancel();
    const accessToken = (received[before]?.['authorization'] ?? '').replace(/^Bearer /, '');
    expect(accessToken.length).toBeGreaterThan(10);

    const replay = await browser.fetch(callback);
    expect(replay.status).toBe(400);
    await replay.body?.cancel();

    const logout = await browser.fetch(`${stage.gh.url}/auth/logout`, { method: 'POST', headers: { origin: stage.gh.url } });
    expect(logout.status).toBe(200);
    const idToken = new URL(((await logout.json()) as { logoutUrl: string }).logoutUrl).searchParams.get('id_token_hint') ?? '';
    expect(idToken).toMatch(/^eyJ/);
    const gone = await fetch(`${stage.gh.url}/api/orders`, { headers: { cookie: `${SESSION}=${cookie}` } });
    expect(gone.status).toBe(401);

    const text = stage.gh.logs.map((l) => JSON.stringify(l)).join('\n');
    expect(stage.gh.logs.length).toBeGreaterThan(5);
    expect(text).toContain('login completed');
    for (const secret of [cookie, accessToken, idToken, code, state, stage.idp.clientSecret, 'eyJ']) {
      expect(text, `log contains ${secret.slice(0, 12)}…`).not.toContain(secret);
    }
  });
});
