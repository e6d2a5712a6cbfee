import { describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { jsonOf, sessionCookieOf, storeKeyOf, waitUntil } from '../helpers/token-kit.ts';

const ADMIN_TOKEN = 'frozen-redis-admin-token-0123456789abcdef';

/**
 * Issue 15 §4: an admin revocation sent while Redis is frozen used to answer a plain 503 and then take effect
 * when Redis resumed. Its 503 now says the revocation is unconfirmed, and when Redis resumes the revocation
 * reaches the caches at once (its pub/sub message was sent right behind the write), not after their maximum age.
 */
describe('admin revocation while Redis is frozen', () => {
  const env = { ADMIN_TOKEN };
  const stage = useStage(() => ({
    ownRedis: true,
    backends: { backend: startBackend },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
    gatehouse: { env },
  }));
  const admin = async (method: string, path: string) =>
    jsonOf(await fetch(`${stage.gh.url}/admin${path}`, { method, headers: { 'x-admin-token': ADMIN_TOKEN } }));

  it('answers 503 session_store_unavailable with revocation: unconfirmed, and the revocation holds as soon as Redis resumes', async () => {
    const one = new Browser();
    await one.login(stage.gh.url, 'frieda');
    const two = new Browser();
    await two.login(stage.gh.url, 'gustav');
    const cookies = [sessionCookieOf(one, stage.gh), sessionCookieOf(two, stage.gh)];
    const call = async (header: string) => (await fetch(`${stage.gh.url}/api/frozen`, { headers: { cookie: header } })).status;
    // Warm the caches: "not revoked" is what they hold when the revocations are sent.
    for (const c of cookies) expect(await call(c.header)).toBe(200);

    // Every client's commands wait until the pause ends; Gatehouse's command timeout is 2 s.
    const pauseMs = 3000;
    await stage.redis.call('CLIENT', 'PAUSE', String(pauseMs), 'ALL');
    const pausedAt = Date.now();
    const [session, user] = await Promise.all([
      admin('DELETE', `/sessions/${storeKeyOf(cookies[0]?.value ?? '')}`),
      admin('POST', '/users/gustav/revoke'),
    ]);
    expect(Date.now() - pausedAt).toBeLessThan(pauseMs);
    for (const res of [session, user]) {
      expectError(res, 503, 'session_store_unavailable');
      expect(res.body['revocation']).toBe('unconfirmed');
    }

    // Redis runs what it was sent when the pause ends: both revocations hold, well within the caches' 10 s.
    await waitUntil(async () => Date.now() - pausedAt > pauseMs, pauseMs, 'the pause to end', 50);
    const resumedAt = Date.now();
    for (const c of cookies) await waitUntil(async () => (await call(c.header)) === 401, 5000, 'the revocation to hold', 50);
    expect(Date.now() - resumedAt).toBeLessThan(2000);

    // Retrying is harmless: now confirmed.
    expect((await admin('POST', '/users/gustav/revoke')).status).toBe(200);
  });
});
