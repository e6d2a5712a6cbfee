import { beforeAll, describe, expect, it } from 'vitest';
import { closed, nextMessage, openWs, startBackend, startWsBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { testClock } from '../helpers/clock.ts';
import { readSession, revokeAtIdp, sessionCookieOf, storeKeyOf } from '../helpers/token-kit.ts';

const ADMIN_TOKEN = 'metr1cs-t0ken-0123456789abcdefghijklmnopqrstuv';

/** A scrape as `series line key → value` (`name{labels}` exactly as exposed), HELP/TYPE lines left out. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrapeMain(gh: TestGatehouse): Promise<Map<string, number>> {
  const res = await fetch(`${gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } });
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

/**
 * GET /metrics: on its own listener with METRICS_PORT, else on the main port behind the admin token, else nowhere; and
 * the series move with real traffic (a login through the real IdP, requests to a real backend, a WebSocket) without
 * ever growing with what clients choose (paths).
 */
describe('/metrics', () => {
  const stage = useStage({
    backends: { backend: startBackend, ws: startWsBackend },
    yaml: ({ backend, ws }) =>
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/chat', backend: ws.url },
        { frontendHost: '*', backend: backend.url },
      ]),
    gatehouse: { env: { ADMIN_TOKEN } },
    more: {
      ownPort: { env: { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', ADMIN_TOKEN } },
      off: {},
    },
  });
  let cookie: string;
  let cookieValue: string;
  beforeAll(async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'ada');
    const c = sessionCookieOf(browser, stage.gh);
    cookie = c.header;
    cookieValue = c.value;
  });

  it('on the main port, answers only the admin token: none, a wrong one or one in the query string is a 401', async () => {
    await expectError(await fetch(`${stage.gh.url}/metrics`), 401, 'admin_unauthorized');
    await expectError(
      await fetch(`${stage.gh.url}/metrics`, { headers: { 'x-admin-token': `${ADMIN_TOKEN}x` } }),
      401,
      'admin_unauthorized',
    );
    await expectError(await fetch(`${stage.gh.url}/metrics?token=${ADMIN_TOKEN}`), 401, 'admin_unauthorized');
    // A user's session is no admin credential.
    await expectError(await fetch(`${stage.gh.url}/metrics`, { headers: { cookie } }), 401, 'admin_unauthorized');
    const res = await fetch(`${stage.gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    expect(text).toContain('# TYPE gatehouse_requests_total counter');
    expect(text).toContain('# TYPE gatehouse_request_duration_seconds histogram');
    // The default process metrics, under the same prefix.
    expect(text).toMatch(/^gatehouse_process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^gatehouse_nodejs_eventloop_lag_seconds \d/m);
  });

  it('with METRICS_PORT, is served on that listener without credentials, and not on the main port even with the token', async () => {
    const gh = stage.more.ownPort;
    const at = gh.app.metricsAddress();
    expect(at?.address).toBe('127.0.0.1');
    const base = `http://127.0.0.1:${at?.port}`;
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('# TYPE gatehouse_requests_in_flight gauge');
    await expectError(await fetch(`${base}/metrics`, { method: 'POST' }), 405, 'method_not_allowed');
    await expectError(await fetch(`${base}/admin/sessions/x`), 404, 'not_found');
    await expectError(await fetch(`${gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } }), 404, 'not_found');
  });

  it('without ADMIN_TOKEN and METRICS_PORT does not exist, and nothing is counted', async () => {
    const gh = stage.more.off;
    await expectError(await fetch(`${gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } }), 404, 'not_found');
    expect(gh.app.metrics.enabled).toBe(false);
    expect(gh.app.metricsAddress()).toBeUndefined();
  });

  it('counts proxied requests by mapping, method and status class, with their Gatehouse and backend durations', async () => {
    const ok = 'gatehouse_requests_total{mapping="mappings[1]",method="GET",status_class="2xx"}';
    const post = 'gatehouse_requests_total{mapping="mappings[1]",method="POST",status_class="2xx"}';
    // Refused by admission (the route's auth policy): never forwarded to a mapping, so counted under "-".
    const refused = 'gatehouse_requests_total{mapping="-",method="GET",status_class="4xx"}';
    const backendCount = 'gatehouse_backend_response_seconds_count{mapping="mappings[1]"}';
    const durationCount = 'gatehouse_request_duration_seconds_count{mapping="mappings[1]",method="GET",status_class="2xx"}';
    const before = await scrapeMain(stage.gh);
    for (let i = 0; i < 3; i++) expect((await fetch(`${stage.gh.url}/api/items/${i}`, { headers: { cookie } })).status).toBe(200);
    expect(
      (await fetch(`${stage.gh.url}/api/items`, { method: 'POST', headers: { cookie, origin: stage.gh.url }, body: 'x' })).status,
    ).toBe(200);
    await expectError(await fetch(`${stage.gh.url}/api/items/1`), 401, 'unauthorized');
    const after = await scrapeMain(stage.gh);
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    expect(delta(ok)).toBe(3);
    expect(delta(post)).toBe(1);
    expect(delta(refused)).toBe(1);
    expect(delta(durationCount)).toBe(3);
    // The refused request never reached the backend: four backend answers, not five.
    expect(delta(backendCount)).toBe(4);
    expect(delta('gatehouse_error_responses_total{error="unauthorized"}')).toBe(1);
    expect(delta('gatehouse_auth_failures_total{reason="unauthorized"}')).toBe(1);
    expect(after.get('gatehouse_request_duration_seconds_bucket{mapping="mappings[1]",method="GET",status_class="2xx",le="+Inf"}')).toBe(
      after.get(durationCount),
    );
    expect(after.get('gatehouse_requests_in_flight')).toBe(0);
  });

  it('counts a request refused before routing under mapping "-" and its error code', async () => {
    const before = await scrapeMain(stage.gh);
    await expectError(await fetch(`${stage.gh.url}/api/a%2Fb`, { headers: { cookie } }), 400, 'invalid_path');
    const after = await scrapeMain(stage.gh);
    const key = 'gatehouse_requests_total{mapping="-",method="GET",status_class="4xx"}';
    expect((after.get(key) ?? 0) - (before.get(key) ?? 0)).toBe(1);
    const code = 'gatehouse_error_responses_total{error="invalid_path"}';
    expect((after.get(code) ?? 0) - (before.get(code) ?? 0)).toBe(1);
  });

  it('counts logins, the IdP calls and session-store commands behind them, logouts and revocations', async () => {
    const before = await scrapeMain(stage.gh);
    const browser = new Browser();
    expect((await browser.login(stage.gh.url, 'grace')).callbackStatus).toBe(302);
    const grace = sessionCookieOf(browser, stage.gh);
    const mid = await scrapeMain(stage.gh);
    expect((mid.get('gatehouse_logins_total') ?? 0) - (before.get('gatehouse_logins_total') ?? 0)).toBe(1);
    const tokenCalls = 'gatehouse_idp_request_duration_seconds_count{endpoint="token",outcome="ok"}';
    expect((mid.get(tokenCalls) ?? 0) - (before.get(tokenCalls) ?? 0)).toBeGreaterThanOrEqual(1);
    expect(mid.get('gatehouse_idp_request_duration_seconds_count{endpoint="discovery",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(mid.get('gatehouse_session_store_duration_seconds_count{command="set"}')).toBeGreaterThanOrEqual(1);

    const logout = await fetch(`${stage.gh.url}/auth/logout`, { method: 'POST', headers: { cookie: grace.header, origin: stage.gh.url } });
    expect(logout.status).toBe(200);
    const revoke = await fetch(`${stage.gh.url}/admin/sessions/${storeKeyOf(cookieValue)}`, {
      method: 'DELETE',
      headers: { 'x-admin-token': ADMIN_TOKEN },
    });
    expect(revoke.status).toBe(200);
    const after = await scrapeMain(stage.gh);
    const delta = (key: string) => (after.get(key) ?? 0) - (mid.get(key) ?? 0);
    expect(delta('gatehouse_logouts_total{kind="rp_initiated"}')).toBe(1);
    expect(delta('gatehouse_revocations_total{kind="session"}')).toBe(1);

    // A replayed callback fails: counted by the code it was answered with.
    const failed = await fetch(`${stage.gh.url}/auth/callback?state=nope&code=x`, { redirect: 'manual' });
    expect(failed.status).toBe(400);
    const last = await scrapeMain(stage.gh);
    const reason = 'gatehouse_login_failures_total{reason="invalid_state"}';
    expect((last.get(reason) ?? 0) - (after.get(reason) ?? 0)).toBe(1);
    // The revoked session is alice's cookie for the later tests: log in again.
    const again = new Browser();
    await again.login(stage.gh.url, 'ada');
    const c = sessionCookieOf(again, stage.gh);
    cookie = c.header;
    cookieValue = c.value;
  });

  it('shows an open WebSocket while it is open', async () => {
    const ws = await openWs(`${stage.gh.url.replace('http:', 'ws:')}/api/chat/room`, { headers: { cookie } });
    if (!ws.ok) throw new Error(`upgrade refused: ${ws.status} ${ws.body}`);
    ws.ws.send('hi');
    await nextMessage(ws.ws);
    expect((await scrapeMain(stage.gh)).get('gatehouse_websockets_open')).toBe(1);
    ws.ws.close(1000);
    await closed(ws.ws);
    await expect.poll(async () => (await scrapeMain(stage.gh)).get('gatehouse_websockets_open')).toBe(0);
  });

  it('a thousand distinct paths add no series: no path, user or session ever becomes a label', async () => {
    const before = await (await fetch(`${stage.gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } })).text();
    const marker = 'zq7path';
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const res = await fetch(`${stage.gh.url}/api/${marker}-${batch * 50 + i}?user=${i}`, { headers: { cookie } });
          await res.body?.cancel();
          expect(res.status).toBe(200);
        }),
      );
    }
    const after = await (await fetch(`${stage.gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } })).text();
    const series = (text: string) =>
      new Set(
        [...parseExposition(text).keys()].filter(
          (k) => k.startsWith('gatehouse_') && !k.startsWith('gatehouse_nodejs_') && !k.startsWith('gatehouse_process_'),
        ),
      );
    expect([...series(after)].filter((k) => !series(before).has(k))).toEqual([]);
    expect(after).not.toContain(marker);
    expect(after).not.toContain('ada');
    expect(after).not.toContain(storeKeyOf(cookieValue));
    const ok = 'gatehouse_requests_total{mapping="mappings[1]",method="GET",status_class="2xx"}';
    expect((parseExposition(after).get(ok) ?? 0) - (parseExposition(before).get(ok) ?? 0)).toBe(1000);
  });
});

/** Refreshes are counted where they happen: on the replica that held the lock and called the IdP. */
describe('/metrics: token refreshes', () => {
  const clock = testClock();
  const stage = useStage({
    idp: { accessTokenTtlSeconds: 60 },
    backends: { backend: startBackend },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
    gatehouse: { env: { ADMIN_TOKEN, TOKEN_REFRESH_SKEW_SECONDS: '1' }, now: clock.now },
  });

  it('counts a refresh that succeeded, and a refresh the IdP refused by its reason', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'rita');
    const cookie = sessionCookieOf(browser, stage.gh);
    const stored = await readSession(stage.redis, stage.gh, cookie.value);
    const before = await scrapeMain(stage.gh);
    clock.advanceTo(Number(stored?.record['accessTokenExpiresAt']));
    expect((await fetch(`${stage.gh.url}/api/after-expiry`, { headers: { cookie: cookie.header } })).status).toBe(200);
    const after = await scrapeMain(stage.gh);
    expect((after.get('gatehouse_refreshes_total') ?? 0) - (before.get('gatehouse_refreshes_total') ?? 0)).toBe(1);
    const token = 'gatehouse_idp_request_duration_seconds_count{endpoint="token",outcome="ok"}';
    expect((after.get(token) ?? 0) - (before.get(token) ?? 0)).toBeGreaterThanOrEqual(1);

    // The IdP revoked the refresh token: the next refresh is refused, the session ends, counted as `refused`.
    const again = await readSession(stage.redis, stage.gh, cookie.value);
    expect(await revokeAtIdp(stage.idp, again?.tokens.refreshToken ?? '')).toBe(200);
    clock.advanceTo(Number(again?.record['accessTokenExpiresAt']));
    await expectError(await fetch(`${stage.gh.url}/api/after-expiry`, { headers: { cookie: cookie.header } }), 401, 'session_expired');
    const last = await scrapeMain(stage.gh);
    const refused = 'gatehouse_refresh_failures_total{reason="refused"}';
    expect((last.get(refused) ?? 0) - (after.get(refused) ?? 0)).toBe(1);
    expect(
      (last.get('gatehouse_auth_failures_total{reason="session_expired"}') ?? 0) -
        (after.get('gatehouse_auth_failures_total{reason="session_expired"}') ?? 0),
    ).toBe(1);
  });
});

/** The hooks the backends work calls on each change: one series per backend, the breaker's state as 1 among 0s. */
describe('backend health and breaker gauges', () => {
  it('show the last state each backend reported', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.backendState('http://a.internal:8080', 'down');
    metrics.breakerState('http://a.internal:8080', 'open');
    metrics.breakerState('http://a.internal:8080', 'half-open');
    metrics.backendState('http://a.internal:8080', 'up');
    const scrape = parseExposition((await metrics.render()).body);
    expect(scrape.get('gatehouse_backend_up{backend="http://a.internal:8080"}')).toBe(1);
    expect(scrape.get('gatehouse_backend_circuit_state{backend="http://a.internal:8080",state="half_open"}')).toBe(1);
    expect(scrape.get('gatehouse_backend_circuit_state{backend="http://a.internal:8080",state="open"}')).toBe(0);
    expect(scrape.get('gatehouse_backend_circuit_state{backend="http://a.internal:8080",state="closed"}')).toBe(0);
  });
});
