import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';

const SESSION = '__Host-gh_session';
const IDLE_SECONDS = 2;
const MAX_AGE_SECONDS = 5;

/** Keeps every Set-Cookie line it was sent. */
class RecordingBrowser extends Browser {
  readonly setCookies: string[] = [];
  override async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const res = await super.fetch(url, init);
    this.setCookies.push(...res.headers.getSetCookie());
    return res;
  }
}

interface Me {
  session: { expiresAt: string; idleExpiresAt: string };
}

describe('session expiry: idle (rolling) and absolute (OWASP Session Management)', () => {
  const stage = useStage({
    gatehouse: { env: { SESSION_IDLE_TTL_SECONDS: String(IDLE_SECONDS), SESSION_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS) } },
  });

  const storeKey = (id: string) => `${stage.gh.config.redis.keyPrefix}s:${createHash('sha256').update(id).digest('base64url')}`;
  const me = (cookie: string) => fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${cookie}` } });
  const login = async () => {
    const browser = new RecordingBrowser();
    await browser.login(stage.gh.url, 'alice');
    const cookie = browser.cookie(stage.gh.url, SESSION);
    if (!cookie) throw new Error('no session cookie after login');
    return { browser, cookie, at: Date.now() };
  };

  it('sets the session cookie with Max-Age equal to SESSION_MAX_AGE_SECONDS', async () => {
    const { browser, cookie } = await login();
    const line = browser.setCookies.find((c) => c.startsWith(`${SESSION}=${cookie}`));
    expect(line).toBeDefined();
    const attrs = (line ?? '').split(';').map((a) => a.trim());
    expect(attrs).toContain(`Max-Age=${MAX_AGE_SECONDS}`);
    expect(attrs.some((a) => /^expires=/i.test(a) || /^domain=/i.test(a))).toBe(false);
  });

  it('keeps a session used regularly past the idle timeout, and ends it once idle for longer than the timeout', async () => {
    const { cookie, at } = await login();
    // Used every 600 ms (the touch is throttled to idle/10) for well past one idle period.
    while (Date.now() - at < (IDLE_SECONDS + 1.2) * 1000) {
      await sleep(600);
      const res = await me(cookie);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    const ttl = await stage.redis.pttl(storeKey(cookie));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(IDLE_SECONDS * 1000);

    await sleep(IDLE_SECONDS * 1000 + 400);
    const res = await me(cookie);
    await expectError(res, 401, 'unauthorized');
    expect(await stage.redis.exists(storeKey(cookie))).toBe(0);
  });

  it('ends a busy session at the absolute limit: activity never extends it', async () => {
    const { cookie, at } = await login();
    const first = await me(cookie);
    expect(first.status).toBe(200);
    const expiresAt = ((await first.json()) as Me).session.expiresAt;
    expect(Math.abs(Date.parse(expiresAt) - (at + MAX_AGE_SECONDS * 1000))).toBeLessThan(1500);

    let endedAfterMs: number | undefined;
    while (Date.now() - at < (MAX_AGE_SECONDS + 1.5) * 1000) {
      await sleep(400);
      const res = await me(cookie);
      if (res.status === 200) {
        expect(((await res.json()) as Me).session.expiresAt).toBe(expiresAt);
        continue;
      }
      await expectError(res, 401, 'unauthorized');
      endedAfterMs = Date.now() - at;
      break;
    }
    expect(endedAfterMs).toBeDefined();
    // Alive through several idle periods thanks to the activity, dead at the absolute limit.
    expect(endedAfterMs).toBeGreaterThanOrEqual(MAX_AGE_SECONDS * 1000 - 800);
    expect(endedAfterMs).toBeLessThanOrEqual(MAX_AGE_SECONDS * 1000 + 1000);
    expect(await stage.redis.exists(storeKey(cookie))).toBe(0);
  });
});
