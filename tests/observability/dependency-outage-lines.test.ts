import { afterAll, describe, expect, inject, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { freePort } from '../helpers/ports.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { jsonOf, sessionCookieOf, upgradeStatus, waitUntil } from '../helpers/token-kit.ts';

const PER_REQUEST_ERRORS = ['proxy error', 'request failed', 'websocket error'];

/**
 * Issue 15 §4: a Redis outage once wrote an error line with a stack trace per 503 (1,158 lines in 6 s), an IdP
 * outage one per /auth/login. Now an outage is one line when it starts (with the cause), at most one per
 * interval while it lasts, and one when it ends; each request keeps its own access line.
 */
describe('one log line per dependency outage interval, not one per failed request', () => {
  const stage = useStage(() => ({
    ownRedis: true,
    backends: { backend: startBackend },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
  }));

  it('Redis gone: 503s on /api, upgrades and /auth make one "dependency unavailable" line, and its return one "dependency recovered"', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'olga');
    const cookie = sessionCookieOf(browser, stage.gh);
    const call = async () => jsonOf(await fetch(`${stage.gh.url}/api/outage`, { headers: { cookie: cookie.header } }));
    expect((await call()).status).toBe(200);
    const from = stage.gh.logs.length;

    await stage.redisServer.stop();
    let restarted = false;
    try {
      await waitUntil(async () => (await call()).status === 503, 2000, 'the cached session to stop being trusted');
      for (let i = 0; i < 30; i++) expectError(await call(), 503, 'session_store_unavailable');
      expect(await upgradeStatus(`${stage.gh.url}/api/ws`, cookie.header)).toBe(503);
      await expectError(await fetch(`${stage.gh.url}/auth/login`, { redirect: 'manual' }), 503, 'session_store_unavailable');

      const during = stage.gh.logs.slice(from);
      const outageLines = during.filter((l) => l['dependency'] === 'redis');
      expect(outageLines.map((l) => l['msg'])).toEqual(['dependency unavailable']);
      expect(outageLines[0]).toMatchObject({ level: 'error', code: 'session_store_unavailable' });
      expect(outageLines[0]?.['err'], 'the first failure carries its cause').toBeTruthy();
      expect(during.filter((l) => PER_REQUEST_ERRORS.includes(String(l['msg'])))).toEqual([]);
      // Every failed request is still on record, on its own access line.
      expect(during.filter((l) => l['msg'] === 'proxy' && l['detail'] === 'session_store_unavailable').length).toBeGreaterThanOrEqual(31);

      await stage.redisServer.start();
      restarted = true;
      // The restarted redis-server is empty: the session is gone, which takes a store answer to learn.
      await waitUntil(async () => (await call()).status === 401, 8000, 'Redis to answer again', 100);
      const recovered = stage.gh.logs.slice(from).filter((l) => l['msg'] === 'dependency recovered');
      expect(recovered).toHaveLength(1);
      expect(recovered[0]).toMatchObject({ level: 'info', dependency: 'redis' });
      expect(recovered[0]?.['affected']).toBeGreaterThanOrEqual(33);
    } finally {
      if (!restarted) await stage.redisServer.start();
    }
  });

  describe('IdP unreachable', () => {
    let gh: TestGatehouse | undefined;
    afterAll(async () => {
      await gh?.close();
    });

    it('twenty /auth/login answers of 503 idp_unavailable make one "dependency unavailable" line', async () => {
      gh = await startGatehouse({
        redisUrl: inject('redisUrl'),
        env: {
          OIDC_ISSUER: `http://127.0.0.1:${await freePort()}`,
          OIDC_CLIENT_ID: 'gatehouse-nowhere',
          OIDC_CLIENT_SECRET: 'gatehouse-nowhere-secret-0123456789abcdef',
        },
      });
      const from = gh.logs.length;
      for (let i = 0; i < 20; i++) await expectError(await fetch(`${gh.url}/auth/login`, { redirect: 'manual' }), 503, 'idp_unavailable');
      const lines = gh.logs.slice(from);
      expect(lines.filter((l) => l['dependency'] === 'idp').map((l) => [l['level'], l['msg'], l['code']])).toEqual([
        ['error', 'dependency unavailable', 'idp_unavailable'],
      ]);
      expect(lines.filter((l) => PER_REQUEST_ERRORS.includes(String(l['msg'])))).toEqual([]);
      expect(lines.filter((l) => l['msg'] === 'request' && l['code'] === 'idp_unavailable')).toHaveLength(20);
    });
  });
});
