import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import {
  jsonOf,
  makeSigningKey,
  nowSeconds,
  sessionCookieOf,
  signJwt,
  storeKeyOf,
  upgradeStatus,
  waitUntil,
  type SigningKey,
} from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const ADMIN_TOKEN = 'redis-down-admin-token-0123456789abcdefgh';
const API_AUDIENCE = 'https://api.gatehouse.test';

/**
 * REDIS-DOWN (51): when the store that holds sessions and the blocklist hangs or goes away, protected requests
 * fail closed with 503, never 200 (an unreadable blocklist is not "not revoked") and never 401 (an unreadable
 * session is not "no session"). Service resumes when Redis is back, without a restart. Uses its own redis-server.
 */
describe('Redis unavailable', () => {
  let rsa: SigningKey;
  beforeAll(async () => {
    rsa = await makeSigningKey('RS256');
  });
  const env = { REDIS_KEY_PREFIX: 'rd:', ADMIN_TOKEN, API_AUDIENCE, TOKEN_REFRESH_SKEW_SECONDS: '0' };
  const stage = useStage(() => ({
    ownRedis: true,
    idp: { jwks: { keys: [rsa.privateJwk] } },
    backends: { backend: startBackend },
    yaml: ({ backend }) =>
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/ws', backend: backend.url },
        { frontendHost: '*', backend: backend.url },
      ]),
    gatehouse: { env },
    more: { b: { env } },
  }));

  const bearer = () =>
    signJwt(rsa, {
      iss: stage.idp.issuer,
      aud: API_AUDIENCE,
      sub: 'svc',
      iat: nowSeconds(),
      exp: nowSeconds() + 60,
      jti: randomUUID(),
    });
  const call = async (gh: TestGatehouse, headers: Record<string, string>) => jsonOf(await fetch(`${gh.url}/api/rd`, { headers }));
  const expectStoreUnavailable = (res: { status: number; body: Record<string, unknown> }) => {
    expectError(res, 503, 'session_store_unavailable');
  };

  it('Redis hangs: a session or bearer check that needs it answers 503 after the command timeout, then recovers with the same cookie', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'hugo');
    const cookie = sessionCookieOf(browser, stage.gh);
    const token = await bearer();
    const callsBefore = stage.backends.backend.requests.length;

    // Every client's commands wait 3.5 s; Gatehouse's command timeout is 2 s. B has nothing cached for these.
    await stage.redis.call('CLIENT', 'PAUSE', '3500', 'ALL');
    const pausedAt = Date.now();
    const [session, bearerRes] = await Promise.all([
      call(stage.more.b, { cookie: cookie.header }),
      call(stage.more.b, { authorization: `Bearer ${token}` }),
    ]);
    expectStoreUnavailable(session);
    expectStoreUnavailable(bearerRes);
    expect(Date.now() - pausedAt).toBeLessThan(3500);
    expect(stage.backends.backend.requests.length).toBe(callsBefore);

    const servedByB = async () => (await call(stage.more.b, { cookie: cookie.header })).status === 200;
    await waitUntil(servedByB, 5000, 'B to serve the session again', 100);
    expect((await call(stage.more.b, { authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('Redis is gone: warm caches are not trusted, sessions, bearer tokens, upgrades and admin calls answer 503; a restarted Redis serves new logins', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'ines');
    const cookie = sessionCookieOf(browser, stage.gh);
    const token = await bearer();
    // Warm A's session and blocklist caches: it must still not answer from them once Redis is gone.
    for (let i = 0; i < 3; i++) expect((await call(stage.gh, { cookie: cookie.header })).status).toBe(200);
    expect((await call(stage.gh, { authorization: `Bearer ${token}` })).status).toBe(200);
    const callsBefore = stage.backends.backend.requests.length;

    await stage.redisServer.stop();
    try {
      // The subscriber connection sees the close at once; give the event loop a moment to run it.
      const refusedByA = async () => (await call(stage.gh, { cookie: cookie.header })).status !== 200;
      await waitUntil(refusedByA, 500, 'A to stop answering from its cache');
      for (const gh of [stage.gh, stage.more.b]) {
        expectStoreUnavailable(await call(gh, { cookie: cookie.header }));
        expectStoreUnavailable(await call(gh, { authorization: `Bearer ${token}` }));
        expect(await upgradeStatus(`${gh.url}/api/ws/rd`, cookie.header)).toBe(503);
      }
      const admin = await jsonOf(
        await fetch(`${stage.gh.url}/admin/sessions/${storeKeyOf(cookie.value)}`, {
          method: 'DELETE',
          headers: { 'x-admin-token': ADMIN_TOKEN },
        }),
      );
      expectStoreUnavailable(admin);
      expect(stage.backends.backend.requests.length).toBe(callsBefore);
    } finally {
      await stage.redisServer.start();
    }

    // The new redis-server has no data: the old session is gone (401), and a new login works on both replicas.
    for (const gh of [stage.gh, stage.more.b]) {
      await waitUntil(async () => (await fetch(`${gh.url}/readyz`)).status === 200, 8000, `${gh.url} to reconnect`, 100);
    }
    const lost = await call(stage.gh, { cookie: cookie.header });
    expectError(lost, 401, 'unauthorized');
    const again = new Browser();
    await again.login(stage.gh.url, 'ines');
    const fresh = sessionCookieOf(again, stage.gh);
    expect((await call(stage.gh, { cookie: fresh.header })).status).toBe(200);
    expect((await call(stage.more.b, { cookie: fresh.header })).status).toBe(200);
    expect((await call(stage.more.b, { authorization: `Bearer ${token}` })).status).toBe(200);
  });
});
