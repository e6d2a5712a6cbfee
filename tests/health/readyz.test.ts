import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createDevIdp } from '../../src/dev/idp.ts';
import { Browser } from '../helpers/browser.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { freePort } from '../helpers/ports.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { startBackend } from '../helpers/backends.ts';

const SESSION = '__Host-gh_session';

interface Ready {
  ok: boolean;
  error?: string;
  failed?: string[];
  checks: Record<string, string>;
}

async function readyz(url: string): Promise<{ status: number; body: Ready }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Ready };
}

/** Polls /readyz until it answers `status` (or the deadline passes) and returns the last answer. */
async function readyzUntil(url: string, status: number, timeoutMs: number): Promise<{ status: number; body: Ready }> {
  const deadline = Date.now() + timeoutMs;
  let last = await readyz(url);
  while (last.status !== status && Date.now() < deadline) {
    await sleep(100);
    last = await readyz(url);
  }
  return last;
}

describe('/readyz follows the session store, and requests fail closed while it is down', () => {
  const stage = useStage({
    ownRedis: true,
    backends: {
      backend: () =>
        startBackend((_req, res) => {
          res.end('{}');
          return true;
        }),
    },
    yaml: ({ backend }) => `defaultBackend: "${backend.url}"\nmappings: []\n`,
  });

  it('is 200, then 503 naming store while Redis is down (healthz stays 200, sessions answer 503), then 200 again', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'alice');
    const cookie = browser.cookie(stage.gh.url, SESSION) ?? '';
    expect(cookie).not.toBe('');
    const up = await readyz(stage.gh.url);
    expect(up).toEqual({ status: 200, body: { ok: true, checks: { store: 'ok', idp: 'ok' } } });
    expect((await fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${cookie}` } })).status).toBe(200);

    await stage.redisServer.stop();
    try {
      const down = await readyzUntil(stage.gh.url, 503, 5000);
      expectError(down, 503, 'not_ready');
      expect(down.body.failed).toEqual(['store']);
      expect(down.body.checks).toEqual({ store: 'fail', idp: 'ok' });
      expect((await fetch(`${stage.gh.url}/healthz`)).status).toBe(200);

      // Fail closed: a store error is never read as "no session" (401) nor served from memory (200).
      const headers = { cookie: `${SESSION}=${cookie}` };
      await expectError(await fetch(`${stage.gh.url}/auth/me`, { headers }), 503, 'session_store_unavailable');
      const hits = stage.backends.backend.requests.length;
      await expectError(await fetch(`${stage.gh.url}/api/orders`, { headers }), 503, 'session_store_unavailable');
      expect(stage.backends.backend.requests.length).toBe(hits);
      await expectError(await fetch(`${stage.gh.url}/auth/login`, { redirect: 'manual' }), 503, 'session_store_unavailable');
    } finally {
      await stage.redisServer.start();
    }

    const back = await readyzUntil(stage.gh.url, 200, 8000);
    expect(back).toEqual({ status: 200, body: { ok: true, checks: { store: 'ok', idp: 'ok' } } });
    // The restarted Redis kept nothing (no persistence), so the old cookie is simply unknown; a new login works.
    await expectError(await fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${cookie}` } }), 401, 'unauthorized');
    const again = new Browser();
    const login = await again.login(stage.gh.url, 'alice');
    expect(login.callbackStatus).toBe(302);
    expect((await again.fetch(`${stage.gh.url}/auth/me`)).status).toBe(200);
  });
});

describe('/readyz names the IdP while its discovery has not succeeded', () => {
  let gh: TestGatehouse;
  let idpServer: Server | undefined;

  afterAll(async () => {
    await gh?.close();
    if (idpServer) {
      idpServer.closeAllConnections();
      await new Promise<void>((resolve) => idpServer?.close(() => resolve()));
    }
  });

  it('is 503 with failed [idp] and logins answer 503 idp_unavailable, until the IdP comes up', async () => {
    const idpPort = await freePort();
    const issuer = `http://127.0.0.1:${idpPort}`;
    const { port, url } = await reservePort();
    // Without the idp option the helper does not wait for discovery, which cannot succeed yet.
    gh = await startGatehouse({
      redisUrl: inject('redisUrl'),
      port,
      env: { OIDC_ISSUER: issuer, OIDC_CLIENT_ID: 'gatehouse-late', OIDC_CLIENT_SECRET: 'gatehouse-late-secret-0123456789abcdef' },
    });
    const down = await readyz(gh.url);
    expectError(down, 503, 'not_ready');
    expect(down.body.failed).toEqual(['idp']);
    expect(down.body.checks).toEqual({ store: 'ok', idp: 'fail' });
    expect((await fetch(`${gh.url}/healthz`)).status).toBe(200);
    await expectError(await fetch(`${gh.url}/auth/login`, { redirect: 'manual' }), 503, 'idp_unavailable');

    const idp = await createDevIdp({
      issuer,
      clients: [
        {
          clientId: 'gatehouse-late',
          clientSecret: 'gatehouse-late-secret-0123456789abcdef',
          redirectUris: [`${url}/auth/callback`],
          postLogoutRedirectUris: [`${url}/`],
        },
      ],
    });
    const server = createServer(idp.callback);
    idpServer = server;
    await new Promise<void>((resolve) => server.listen(idpPort, '127.0.0.1', () => resolve()));

    // Discovery retries with backoff (1 s, 2 s, 4 s ...): no restart needed.
    const up = await readyzUntil(gh.url, 200, 9000);
    expect(up).toEqual({ status: 200, body: { ok: true, checks: { store: 'ok', idp: 'ok' } } });
    const login = await new Browser().login(gh.url, 'alice');
    expect(login.callbackStatus).toBe(302);
  });
});
