import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { header, startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { testClock } from '../helpers/clock.ts';
import { expectError } from '../helpers/expect-error.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startPausableForwarder, type PausableForwarder } from '../helpers/pausable-forwarder.ts';
import { jsonOf, readSession, redisClient, sessionCookieOf, waitUntil } from '../helpers/token-kit.ts';

/** Long enough that real time never reaches a token's expiry during the file: only the shared clock does. */
const TOKEN_TTL_SECONDS = 60;
/** Gatehouse's IdP HTTP timeout, which is also how long a request waits for a refresh. */
const HTTP_TIMEOUT_MS = 2000;

interface Readyz {
  ok: boolean;
  checks: Record<string, string>;
  details?: { idp?: { refreshFailures: number; lastFailureAt?: string; retryAt?: string } };
}

/**
 * Issue 15 §1: an IdP that accepts connections but does not answer (frozen) or is down must not log users
 * out. A pausable TCP forwarder fronts a real, rotating oidc-provider (the issuer is the forwarder's URL), and two
 * replicas share Redis and one clock. The scenarios run in order: each logs in its own sessions and moves the
 * clock past their expiry.
 */
describe('refresh through a hung or down IdP', () => {
  const redisUrl = inject('redisUrl');
  const clock = testClock();
  let forwarder: PausableForwarder;
  let idp: TestIdp;
  let a: TestGatehouse;
  let b: TestGatehouse;
  let backend: TestBackend;
  let redis: Redis;
  /** What a replica of a and b is started with (same Redis prefix, same routes). */
  let replica: { env: Record<string, string>; yaml: string };

  const tokenCalls = () => forwarder.requests.filter((r) => r === 'POST /token').length;
  const event = (name: string) => idp.events.get(name) ?? 0;
  const expiryOf = async (cookieValue: string) => Number((await readSession(redis, a, cookieValue))?.record['accessTokenExpiresAt']);
  const call = (gh: TestGatehouse, cookie: string, path: string) => fetch(`${gh.url}/api${path}`, { headers: { cookie } });

  async function login(user: string): Promise<{ value: string; header: string }> {
    const browser = new Browser();
    await browser.login(a.url, user);
    return sessionCookieOf(browser, a);
  }

  async function readyz(gh: TestGatehouse): Promise<{ status: number; body: Readyz }> {
    const res = await fetch(`${gh.url}/readyz`);
    return { status: res.status, body: (await res.json()) as Readyz };
  }

  beforeAll(async () => {
    redis = redisClient(redisUrl);
    backend = await startBackend();
    forwarder = await startPausableForwarder();
    const [pa, pb] = [await reservePort(), await reservePort()];
    idp = await startIdp({
      gatehouseBaseUrls: [pa.url],
      accessTokenTtlSeconds: TOKEN_TTL_SECONDS,
      rotateRefreshTokens: true,
      behind: forwarder,
    });
    const env = {
      REDIS_KEY_PREFIX: `hung${randomBytes(3).toString('hex')}:`,
      TOKEN_REFRESH_SKEW_SECONDS: '5',
      OIDC_HTTP_TIMEOUT_SECONDS: String(HTTP_TIMEOUT_MS / 1000),
    };
    const yaml = `mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`;
    replica = { env, yaml };
    a = await startGatehouse({ idp, redisUrl, port: pa.port, yaml, env, now: clock.now });
    b = await startGatehouse({ idp, redisUrl, port: pb.port, yaml, env, now: clock.now });
  });
  afterAll(async () => {
    forwarder?.resume();
    await Promise.all([a?.close(), b?.close()]);
    await Promise.all([idp?.close(), backend?.close(), forwarder?.close()]);
    redis?.disconnect();
  });

  it('stale-while-revalidate: with the IdP frozen, a token inside the skew is forwarded at once and the refresh lands later', async () => {
    const cookie = await login('sally');
    const original = `Bearer ${(await readSession(redis, a, cookie.value))?.tokens.accessToken}`;
    const consumed = event('refresh_token.consumed');

    forwarder.pause();
    try {
      // 5 s skew: due for refresh, still valid for 3 s.
      clock.advanceTo((await expiryOf(cookie.value)) - 3000);
      const started = Date.now();
      const res = await call(a, cookie.header, '/swr/1');
      await res.body?.cancel();
      const elapsed = Date.now() - started;
      expect(res.status).toBe(200);
      // Today's code waits for the IdP (HTTP_TIMEOUT_MS) before forwarding the token it already had.
      expect(elapsed).toBeLessThan(HTTP_TIMEOUT_MS / 2);
      expect(header(backend.last(), 'authorization')).toBe(original);
      // The other replica sees A's refresh in flight (its lock) and serves the valid token too, without a second call.
      const other = await call(b, cookie.header, '/swr/2');
      await other.body?.cancel();
      expect(other.status).toBe(200);
      expect(header(backend.last(), 'authorization')).toBe(original);
      expect(tokenCalls()).toBeGreaterThanOrEqual(1);
    } finally {
      forwarder.resume();
    }
    await waitUntil(() => event('refresh_token.consumed') > consumed, 5000, 'the held refresh to reach the IdP');
    await waitUntil(
      async () => `Bearer ${(await readSession(redis, a, cookie.value))?.tokens.accessToken}` !== original,
      5000,
      'the refresh to be stored',
    );
    const after = await call(b, cookie.header, '/swr/3');
    await after.body?.cancel();
    expect(after.status).toBe(200);
    expect(header(backend.last(), 'authorization')).not.toBe(original);
    expect(event('refresh_token.consumed')).toBe(consumed + 1);
  });

  it('sessions survive a hung IdP with rotating refresh tokens: no refresh token is sent twice, none is reused at the IdP', async () => {
    const cookies = [];
    for (let i = 0; i < 10; i++) cookies.push(await login(`hung${i}`));
    const expiries = await Promise.all(cookies.map((c) => expiryOf(c.value)));
    const before = {
      consumed: event('refresh_token.consumed'),
      revoked: event('grant.revoked'),
      errors: event('grant.error'),
      calls: tokenCalls(),
    };
    // Each session is first used on one replica, then on the other.
    const first = (i: number) => (i % 2 ? a : b);
    const second = (i: number) => (i % 2 ? b : a);

    forwarder.pause();
    try {
      clock.advanceTo(Math.max(...expiries) + 1000);
      // Expired tokens wait for the refresh up to the request deadline, then 503; the IdP calls stay in flight.
      const started = Date.now();
      const round1 = await Promise.all(cookies.map(async (c, i) => jsonOf(await call(first(i), c.header, `/hung/${i}/1`))));
      for (const r of round1) expectError(r, 503, 'idp_unavailable');
      expect(Date.now() - started).toBeLessThan(HTTP_TIMEOUT_MS * 2.5);
      // Past the HTTP timeout, on the other replica: it must neither resend the refresh token nor end the session.
      const round2 = await Promise.all(cookies.map(async (c, i) => jsonOf(await call(second(i), c.header, `/hung/${i}/2`))));
      for (const r of round2) expectError(r, 503, 'idp_unavailable');
    } finally {
      forwarder.resume();
    }
    await waitUntil(() => event('refresh_token.consumed') >= before.consumed + 10, 8000, 'the held refreshes to reach the IdP');

    const round3 = await Promise.all(
      cookies.map(async (c, i) => {
        const res = await call(i % 3 ? a : b, c.header, `/hung/${i}/3`);
        await res.body?.cancel();
        return res.status;
      }),
    );
    expect(round3).toEqual(Array(10).fill(200));
    for (const c of cookies) expect(await readSession(redis, a, c.value)).toBeDefined();
    expect(event('refresh_token.consumed') - before.consumed).toBe(10);
    expect(event('grant.revoked') - before.revoked).toBe(0);
    expect(event('grant.error') - before.errors).toBe(0);
    // One refresh per session reached the IdP: today's code resends each refresh token after its timeout.
    expect(tokenCalls() - before.calls).toBe(10);
  });

  it('a replica shutting down lets its running refresh land before it closes, so the rotated token is not lost', async () => {
    const cookie = await login('sid');
    const original = `Bearer ${(await readSession(redis, a, cookie.value))?.tokens.accessToken}`;
    const before = { consumed: event('refresh_token.consumed'), errors: event('grant.error') };
    const leaving = await startGatehouse({ idp, redisUrl, ...replica, now: clock.now });
    const calls = tokenCalls();
    let closed: Promise<void> | undefined;
    forwarder.pause();
    try {
      clock.advanceTo((await expiryOf(cookie.value)) - 3000);
      // Served at once; the refresh is held at the frozen IdP while the replica starts shutting down.
      const res = await call(leaving, cookie.header, '/leave/1');
      await res.body?.cancel();
      expect(res.status).toBe(200);
      await waitUntil(() => tokenCalls() > calls, 2000, 'the refresh to be sent');
      closed = leaving.close();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      forwarder.resume();
    }
    await closed;
    // The refresh landed and was stored before the store closed: the other replica uses the rotated tokens.
    expect(event('refresh_token.consumed')).toBe(before.consumed + 1);
    expect(`Bearer ${(await readSession(redis, a, cookie.value))?.tokens.accessToken}`).not.toBe(original);
    clock.advanceTo((await expiryOf(cookie.value)) + 1000);
    const after = await call(a, cookie.header, '/leave/2');
    await after.body?.cancel();
    expect(after.status).toBe(200);
    expect(event('grant.error')).toBe(before.errors);
  });

  it('a down IdP is not hit once per request: refreshes back off per session and per process; /readyz says degraded and stays 200', async () => {
    const cookies = [];
    for (let i = 0; i < 8; i++) cookies.push(await login(`down${i}`));
    const expiries = await Promise.all(cookies.map((c) => expiryOf(c.value)));
    const calls = tokenCalls();
    expect((await readyz(a)).body).toEqual({ ok: true, checks: { store: 'ok', idp: 'ok' } });

    forwarder.refuse();
    try {
      clock.advanceTo(Math.max(...expiries) + 1000);
      const [one, ...others] = cookies;
      if (!one) throw new Error('no session');
      // One session, ten requests over about a second: today's code tries the IdP for every one of them.
      for (let i = 0; i < 10; i++) {
        expectError(await jsonOf(await call(a, one.header, `/down/0/${i}`)), 503, 'idp_unavailable');
        await new Promise((r) => setTimeout(r, 100));
      }
      const perSession = tokenCalls() - calls;
      expect(perSession).toBeGreaterThanOrEqual(1);
      expect(perSession).toBeLessThanOrEqual(3);
      // Seven more sessions, three requests each: once refreshes keep failing, the process holds them all back.
      for (let round = 0; round < 3; round++) {
        for (const [i, c] of others.entries()) {
          expectError(await jsonOf(await call(a, c.header, `/down/${i + 1}/${round}`)), 503, 'idp_unavailable');
        }
      }
      expect(tokenCalls() - calls).toBeLessThanOrEqual(perSession + 3);

      const degraded = await readyz(a);
      expect(degraded.status).toBe(200);
      expect(degraded.body.ok).toBe(true);
      expect(degraded.body.checks).toEqual({ store: 'ok', idp: 'degraded' });
      expect(degraded.body.details?.idp?.refreshFailures).toBeGreaterThanOrEqual(3);
      expect(Date.parse(degraded.body.details?.idp?.lastFailureAt ?? '')).toBeGreaterThan(0);
      expect(a.logs.some((l) => l['msg'] === 'identity provider refreshes keep failing; this process holds back token refreshes')).toBe(
        true,
      );
    } finally {
      forwarder.resume();
    }

    // Past the longest backoff the next request tries again, and the session was kept.
    clock.advance(31_000);
    const back = await call(a, cookies[0]?.header ?? '', '/down/0/back');
    await back.body?.cancel();
    expect(back.status).toBe(200);
    expect((await readyz(a)).body).toEqual({ ok: true, checks: { store: 'ok', idp: 'ok' } });
    expect(a.logs.some((l) => l['msg'] === 'identity provider refreshes work again')).toBe(true);
  });
});
