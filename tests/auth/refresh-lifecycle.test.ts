import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Redis } from 'ioredis';
import { header, startBackend, startWsBackend, type TestBackend, type TestWsBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { testClock } from '../helpers/clock.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import {
  jsonOf,
  openWs,
  readSession,
  redisClient,
  revokeAtIdp,
  sessionCookieOf,
  sleep,
  upgradeStatus,
  type StoredSession,
} from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';

/** Long enough that real time never reaches a token's expiry during the file: only the clocks do. */
const TOKEN_TTL_SECONDS = 60;

/**
 * The access-token lifecycle behind a session (issue 5): transparent refresh before proxying (HTTP and
 * WebSocket upgrade), invalid_grant ends the session (REFRESH-FAIL), an unreachable IdP keeps the session for a
 * later retry, and no refresh token at expiry is a 401. Time moves on each Gatehouse's own clock (`now`), never
 * by waiting: the IdP's tokens live longer than the file runs, so only the test decides when one is due. The
 * scenarios run one after another, since two of them move the same Gatehouse's clock.
 */
describe('access token refresh before proxying', () => {
  const redisUrl = inject('redisUrl');
  let redis: Redis;
  let backend: TestBackend;
  let wsBackend: TestWsBackend;
  // IdP 1: gh (skew 1 s, offline_access) and noRt (no offline_access: no refresh token; skew 3 s).
  let idp: TestIdp;
  let gh: TestGatehouse;
  let noRt: TestGatehouse;
  // IdP 2, alone, so stopping it disturbs nobody else: flaky (skew 3 s).
  let flakyIdp: TestIdp;
  let flaky: TestGatehouse;
  const clocks = { gh: testClock(), noRt: testClock(), flaky: testClock() };

  /** When Gatehouse considers the session's access token expired (login time on its clock + expires_in). */
  const expiryOf = (s: StoredSession | undefined) => {
    const at = Number(s?.record['accessTokenExpiresAt']);
    if (!Number.isFinite(at)) throw new Error('session without accessTokenExpiresAt');
    return at;
  };

  /** Authorization headers the backend saw on a path prefix, in order. */
  const tokensSeenOn = (prefix: string) => backend.requests.filter((r) => r.url.startsWith(prefix)).map((r) => header(r, 'authorization'));

  beforeAll(async () => {
    redis = redisClient(redisUrl);
    backend = await startBackend();
    wsBackend = await startWsBackend();
    const yaml = `mappings:\n  - frontendHost: "*"\n    pathPrefix: "/ws"\n    backend: "${wsBackend.url}"\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`;
    const [p1, p2, p3] = [await reservePort(), await reservePort(), await reservePort()];
    [idp, flakyIdp] = await Promise.all([
      startIdp({ gatehouseBaseUrls: [p1.url, p2.url], accessTokenTtlSeconds: TOKEN_TTL_SECONDS }),
      startIdp({ gatehouseBaseUrls: [p3.url], accessTokenTtlSeconds: TOKEN_TTL_SECONDS }),
    ]);
    [gh, noRt, flaky] = await Promise.all([
      startGatehouse({ idp, redisUrl, port: p1.port, yaml, env: { TOKEN_REFRESH_SKEW_SECONDS: '1' }, now: clocks.gh.now }),
      startGatehouse({
        idp,
        clientId: `${idp.clientId}-1`,
        redisUrl,
        port: p2.port,
        yaml,
        env: { TOKEN_REFRESH_SKEW_SECONDS: '3', OIDC_SCOPES: 'openid profile email' },
        now: clocks.noRt.now,
      }),
      startGatehouse({ idp: flakyIdp, redisUrl, port: p3.port, yaml, env: { TOKEN_REFRESH_SKEW_SECONDS: '3' }, now: clocks.flaky.now }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([gh?.close(), noRt?.close(), flaky?.close()]);
    await Promise.all([idp?.close(), flakyIdp?.close(), backend?.close(), wsBackend?.close()]);
    redis?.disconnect();
  });

  it('refreshes transparently: calls after expiry all succeed and the backend gets one new token', async () => {
    const browser = new Browser();
    await browser.login(gh.url, 'rita');
    const cookie = sessionCookieOf(browser, gh);
    const before = await readSession(redis, gh, cookie.value);
    expect(before?.tokens.refreshToken).toBeTruthy();

    expect((await fetch(`${gh.url}/api/seq/0`, { headers: { cookie: cookie.header } })).status).toBe(200);
    const [first] = tokensSeenOn('/seq/');
    expect(first).toBe(`Bearer ${before?.tokens.accessToken}`);

    // Past expiry the next use must refresh first (inside the skew it would be served the old token at once).
    clocks.gh.advanceTo(expiryOf(before) + 300);
    // The upgrade is the first use after the refresh point: it refreshes too (same admission as HTTP).
    const socket = await openWs(`${gh.url}/api/ws/seq`, cookie.header);
    const upgrade = wsBackend.upgrades.findLast((u) => u.url === '/ws/seq');
    const wsToken = upgrade?.headers.get('authorization')?.[0];
    socket.ws.terminate();
    expect(wsToken).toMatch(/^Bearer /);
    expect(wsToken).not.toBe(first);

    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const res = await fetch(`${gh.url}/api/seq/${i}`, { headers: { cookie: cookie.header } });
      await res.body?.cancel();
      expect(res.headers.getSetCookie()).toEqual([]);
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const seen = tokensSeenOn('/seq/');
    expect(seen).toHaveLength(6);
    // One refresh: every call after expiry carries the same new token, the one the upgrade got.
    expect(new Set(seen.slice(1))).toEqual(new Set([wsToken]));
    const after = await readSession(redis, gh, cookie.value);
    expect(`Bearer ${after?.tokens.accessToken}`).toBe(wsToken);
    // The IdP rotates refresh tokens: the new one replaced the old in the store.
    expect(after?.tokens.refreshToken).toBeTruthy();
    expect(after?.tokens.refreshToken).not.toBe(before?.tokens.refreshToken);
  });

  it('invalid_grant on refresh destroys the session: 401 session_expired, Redis key gone, WebSocket closed, no expired token forwarded', async () => {
    const browser = new Browser();
    await browser.login(gh.url, 'ivan');
    const cookie = sessionCookieOf(browser, gh);
    const stored = await readSession(redis, gh, cookie.value);
    expect((await fetch(`${gh.url}/api/ig/0`, { headers: { cookie: cookie.header } })).status).toBe(200);
    const socket = await openWs(`${gh.url}/api/ws/ig`, cookie.header);

    // The IdP no longer honours the refresh token (revoked by an operator, expired, reused elsewhere).
    expect(await revokeAtIdp(idp, stored?.tokens.refreshToken as string)).toBe(200);
    clocks.gh.advanceTo(expiryOf(stored) + 300);

    const first = await jsonOf(await fetch(`${gh.url}/api/ig/1`, { headers: { cookie: cookie.header } }));
    expectError(first, 401, 'session_expired');
    expect(tokensSeenOn('/ig/')).toHaveLength(1);
    expect(await readSession(redis, gh, cookie.value)).toBeUndefined();
    // Generous: a loaded machine may take a while to deliver the close frame; a closed socket resolves at once.
    const closed = await Promise.race([socket.closed, sleep(5000).then(() => undefined)]);
    expect(closed?.code).toBe(1008);

    const next = await jsonOf(await fetch(`${gh.url}/api/ig/2`, { headers: { cookie: cookie.header } }));
    expect(next.status).toBe(401);
    expect(['unauthorized', 'session_expired']).toContain(next.body['error']);
    expect(await upgradeStatus(`${gh.url}/api/ws/ig`, cookie.header)).toBe(401);
    expect(tokensSeenOn('/ig/')).toHaveLength(1);
  });

  it('without a refresh token the session works until the access token expires, then answers 401', async () => {
    const browser = new Browser();
    await browser.login(noRt.url, 'nora');
    const cookie = sessionCookieOf(browser, noRt);
    const stored = await readSession(redis, noRt, cookie.value);
    expect(stored?.tokens.refreshToken).toBeUndefined();

    expect((await fetch(`${noRt.url}/api/nort/0`, { headers: { cookie: cookie.header } })).status).toBe(200);
    // Within the skew but not expired: nothing to refresh with, the current token is still good.
    clocks.noRt.advanceTo(expiryOf(stored) - 1000);
    expect((await fetch(`${noRt.url}/api/nort/1`, { headers: { cookie: cookie.header } })).status).toBe(200);
    expect(new Set(tokensSeenOn('/nort/'))).toEqual(new Set([`Bearer ${stored?.tokens.accessToken}`]));

    clocks.noRt.advanceTo(expiryOf(stored) + 300);
    const expired = await jsonOf(await fetch(`${noRt.url}/api/nort/2`, { headers: { cookie: cookie.header } }));
    expectError(expired, 401, 'session_expired');
    expect(tokensSeenOn('/nort/')).toHaveLength(2);
    expect(await upgradeStatus(`${noRt.url}/api/ws/nort`, cookie.header)).toBe(401);
  });

  it('IdP unreachable: the still-valid token is used, after expiry 503 idp_unavailable, and the same session recovers when the IdP is back', async () => {
    const browser = new Browser();
    await browser.login(flaky.url, 'fred');
    const cookie = sessionCookieOf(browser, flaky);
    const stored = await readSession(redis, flaky, cookie.value);
    const original = `Bearer ${stored?.tokens.accessToken}`;
    expect((await fetch(`${flaky.url}/api/down/0`, { headers: { cookie: cookie.header } })).status).toBe(200);

    await flakyIdp.stop();
    try {
      // 3 s skew: a refresh is due, fails, and the current token is still valid.
      clocks.flaky.advanceTo(expiryOf(stored) - 2000);
      const stillValid = await fetch(`${flaky.url}/api/down/1`, { headers: { cookie: cookie.header } });
      await stillValid.body?.cancel();
      expect(stillValid.status).toBe(200);
      expect(tokensSeenOn('/down/')).toEqual([original, original]);

      clocks.flaky.advanceTo(expiryOf(stored) + 300);
      const unavailable = await jsonOf(await fetch(`${flaky.url}/api/down/2`, { headers: { cookie: cookie.header } }));
      expectError(unavailable, 503, 'idp_unavailable');
      expect(await upgradeStatus(`${flaky.url}/api/ws/down`, cookie.header)).toBe(503);
      // The expired token never reached the backend, and the session is kept for a later retry.
      expect(tokensSeenOn('/down/')).toHaveLength(2);
      expect(await readSession(redis, flaky, cookie.value)).toBeDefined();
    } finally {
      await flakyIdp.start();
    }
    // Two failed refreshes: this session backs off for at most 2 s (refresh.ts: 1 s doubling, equal jitter).
    clocks.flaky.advance(2000);

    const recovered = await fetch(`${flaky.url}/api/down/3`, { headers: { cookie: cookie.header } });
    await recovered.body?.cancel();
    expect(recovered.status).toBe(200);
    expect(recovered.headers.getSetCookie()).toEqual([]);
    const refreshed = tokensSeenOn('/down/').at(-1);
    expect(refreshed).toMatch(/^Bearer /);
    expect(refreshed).not.toBe(original);
    expect(`Bearer ${(await readSession(redis, flaky, cookie.value))?.tokens.accessToken}`).toBe(refreshed);
  });
});
