import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { header, startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { testClock, type TestClock } from '../helpers/clock.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startHostileOp, type HostileOp, type Mutation } from '../helpers/hostile-op.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { retryOnPortRace } from '../helpers/stage.ts';

/** The OP's access tokens live this long; only Gatehouse's clock moves past it, so the OP never refuses what it issued. */
const TOKEN_TTL_SECONDS = 60;

/** A hostile OP, a backend behind a catch-all mapping, and a Gatehouse on `clock` (its own refresh client). */
async function startHostileStack(clock: TestClock): Promise<{ op: HostileOp; backend: TestBackend; gh: TestGatehouse }> {
  const op = await startHostileOp();
  op.accessTokenTtlSeconds = TOKEN_TTL_SECONDS;
  const backend = await startBackend();
  // Dozens of logins from one address within a minute: past the default /auth limit (60 a minute per client IP).
  const yaml = mappingsYaml([{ frontendHost: '*', backend: backend.url }], 'rateLimits:\n  auth: { requests: 10000, windowSeconds: 60 }\n');
  const gh = await retryOnPortRace(() =>
    startGatehouse({ redisUrl: inject('redisUrl'), yaml, env: { ...op.env, TOKEN_REFRESH_SKEW_SECONDS: '5' }, now: clock.now }),
  );
  await gh.app.oidc.whenReady(10_000);
  return { op, backend, gh };
}

/**
 * Issue 15 §2 and catalogue cases 32–33 (REFRESH-ISS-AUD-AZP): a refresh the IdP answers wrongly ends the session,
 * once. Each case logs in against an honest OP, makes the OP answer the refresh_token grant in one wrong way, and
 * moves Gatehouse's clock past the access token's expiry: the next /api request answers 401 `session_expired`, the
 * session is gone (`/auth/me` 401), the refresh was sent exactly once and never again, and the log names the
 * reason. An IdP that did not answer (503, a dropped connection) keeps the session for a later try instead.
 */
describe('hostile OP at refresh', () => {
  let op: HostileOp;
  let backend: TestBackend;
  let gh: TestGatehouse;
  const clock = testClock();

  beforeAll(async () => {
    ({ op, backend, gh } = await startHostileStack(clock));
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([op?.close(), backend?.close()]);
  });

  /** A fresh session (the OP honest at login), and the token it forwards. */
  async function loggedIn(): Promise<{ browser: Browser; api: (path: string) => Promise<Response>; token: string }> {
    const browser = new Browser();
    const { callbackStatus } = await browser.login(gh.url);
    expect(callbackStatus).toBe(302);
    const api = (path: string) => browser.fetch(`${gh.url}/api${path}`);
    const first = await api('/login-check');
    await first.body?.cancel();
    expect(first.status).toBe(200);
    return { browser, api, token: header(backend.last(), 'authorization') ?? '' };
  }

  const seenOn = (prefix: string) => backend.requests.filter((r) => r.url.startsWith(prefix)).map((r) => header(r, 'authorization'));

  async function expectEndedOnce(mutation: Mutation, reason: string): Promise<void> {
    const { browser, api } = await loggedIn();
    const refreshes = op.counts.refresh;
    op.refresh = mutation;
    try {
      clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
      await expectError(await api(`/${mutation}/1`), 401, 'session_expired', mutation);
      await expectError(await browser.fetch(`${gh.url}/auth/me`), 401, 'unauthorized', 'after');
      await expectError(await api(`/${mutation}/2`), 401, 'unauthorized', 'later');
      expect(op.counts.refresh - refreshes, 'refresh calls').toBe(1);
      expect(seenOn(`/${mutation}/`), 'forwarded').toEqual([]);
      const logged = gh.logs.findLast((l) => l['msg'] === 'token refresh refused; session ended');
      expect(logged?.['reason']).toBe(reason);
    } finally {
      op.refresh = 'valid';
    }
  }

  async function expectRefreshed(mutation: Mutation): Promise<void> {
    const { api, token } = await loggedIn();
    const refreshes = op.counts.refresh;
    op.refresh = mutation;
    try {
      clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
      const res = await api(`/${mutation}/1`);
      await res.body?.cancel();
      expect(res.status, mutation).toBe(200);
      expect(op.counts.refresh - refreshes).toBe(1);
      const [sent] = seenOn(`/${mutation}/`);
      expect(sent).toMatch(/^Bearer /);
      expect(sent).not.toBe(token);
    } finally {
      op.refresh = 'valid';
    }
  }

  it('control: an honest refresh forwards the new token', async () => {
    await expectRefreshed('valid');
  });

  it('a refresh answered with a wrong iss ends the session once (issue 15 §2)', async () => {
    await expectEndedOnce('iss-suffix', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED');
  });

  it.each([
    ['invalid-grant', 'the refresh token is refused', 'OAUTH_RESPONSE_BODY_ERROR (invalid_grant)'],
    ['iss-missing', 'case 33: no iss', 'OAUTH_INVALID_RESPONSE'],
    ['aud-suffix', 'case 33: aud = client_id + "1"', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['aud-missing', 'case 33: no aud', 'OAUTH_INVALID_RESPONSE'],
    ['aud-multi-no-azp', 'a second audience, no azp', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['aud-multi-azp-other', 'azp another client', 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['aud-added', 'case 33: a second audience (azp = client id) the login token did not have', 'ID token changed its aud'],
    ['azp-added', 'case 33: an azp the login token did not have', 'ID token changed its azp'],
    ['sub-other', 'case 32: another sub', 'ID token changed its sub'],
    ['sub-missing', 'no sub', 'OAUTH_INVALID_RESPONSE'],
    ['bad-sig', 'signature bytes corrupted', 'OAUTH_INVALID_RESPONSE'],
    ['alg-none', 'unsigned', 'OAUTH_INVALID_RESPONSE'],
    ['hs256-client-secret', 'HS256 keyed with the client secret', 'OAUTH_INVALID_RESPONSE'],
    ['alg-swap-es256', 'ES256 where RS256 is registered', 'OAUTH_INVALID_RESPONSE'],
    ['kid-absent', 'no kid, two RSA keys', 'OAUTH_KEY_SELECTION_FAILED'],
    ['iat-missing', 'no iat', 'OAUTH_INVALID_RESPONSE'],
    ['exp-past', 'exp 10 minutes ago', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'],
    ['exp-missing', 'no exp', 'OAUTH_INVALID_RESPONSE'],
    ['token-type-mac', 'token_type mac', 'OAUTH_UNSUPPORTED_OPERATION'],
  ] satisfies Array<[Mutation, string, string]>)('ended once: %s (%s)', async (mutation, _case, reason) => {
    await expectEndedOnce(mutation, reason);
  });

  it.each([
    ['aud-array-single', 'aud as a one-element array, as at login'],
    ['no-id-token', 'OIDC Core 12.2: the ID token may be left out'],
    ['token-type-mixed-case', 'token_type "bEARER"'],
  ] satisfies Array<[Mutation, string]>)('refreshed: %s (%s)', async (mutation, _case) => {
    await expectRefreshed(mutation);
  });

  it.each([
    ['http-503', 'an HTML 503', 'OAUTH_RESPONSE_IS_NOT_CONFORM (HTTP 503)'],
    // undici reports a closed socket as UND_ERR_SOCKET; a reset one as ECONNRESET.
    ['close', 'the connection dropped unanswered', /^fetch failed \((UND_ERR_SOCKET|ECONNRESET)\)$/],
  ] satisfies Array<[Mutation, string, string | RegExp]>)(
    'transient: %s (%s) keeps the session: the valid token is used, 503 once expired, and it recovers',
    async (mutation, _case, reason) => {
      const { browser, api, token } = await loggedIn();
      const refreshes = op.counts.refresh;
      const logsBefore = gh.logs.length;
      op.refresh = mutation;
      try {
        // Within the 5 s skew, not expired: the refresh fails and the current token still goes out.
        clock.advance((TOKEN_TTL_SECONDS - 2) * 1000);
        const stillValid = await api(`/${mutation}/1`);
        await stillValid.body?.cancel();
        expect(stillValid.status).toBe(200);
        expect(seenOn(`/${mutation}/`)).toEqual([token]);
        // The refresh ran in the background (stale-while-revalidate): its failure is logged once it lands.
        const kept = await vi.waitFor(() => {
          const line = gh.logs.slice(logsBefore).find((l) => l['msg'] === 'token refresh failed; keeping the session for a later retry');
          expect(line).toBeDefined();
          return line;
        });
        expect(kept?.['reason']).toMatch(reason);
        // Its lock is released (and its outcome announced) just after that line: a request sent before would wait
        // for that outcome rather than refresh again, which a busy host made this test see as one refresh, not two.
        await vi.waitFor(async () => {
          const lock = await gh.app.store.acquireLock(`refresh:${String(kept?.['session'])}`, 1000);
          expect(lock).toBeDefined();
          await lock?.release();
        });

        clock.advance(3000);
        await expectError(await api(`/${mutation}/2`), 503, 'idp_unavailable');
        expect((await browser.fetch(`${gh.url}/auth/me`)).status).toBe(200);
        expect(op.counts.refresh - refreshes).toBe(2);
        expect(seenOn(`/${mutation}/`)).toHaveLength(1);
      } finally {
        op.refresh = 'valid';
      }
      // Past the session's backoff after two failures (2 s, less a random part), the next request refreshes.
      clock.advance(2500);
      const recovered = await api(`/${mutation}/3`);
      await recovered.body?.cancel();
      expect(recovered.status).toBe(200);
      expect(op.counts.refresh - refreshes).toBe(3);
      expect(seenOn(`/${mutation}/`).at(-1)).not.toBe(token);
    },
  );
});

/**
 * The token endpoint answers 200 and the IdP has rotated the refresh token, then checking the new ID token fails
 * for want of the IdP's keys (its JWKS endpoint drops the connection): the refresh token we hold is spent, so the
 * failure is no outage to retry through. A Gatehouse of its own, so its refresh client has fetched no keys yet.
 */
describe('hostile OP at refresh: a failure after the token endpoint answered', () => {
  let op: HostileOp;
  let backend: TestBackend;
  let gh: TestGatehouse;
  const clock = testClock();

  beforeAll(async () => {
    ({ op, backend, gh } = await startHostileStack(clock));
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([op?.close(), backend?.close()]);
  });

  it('ends the session once instead of sending the spent refresh token again', async () => {
    const browser = new Browser();
    expect((await browser.login(gh.url)).callbackStatus).toBe(302);
    const api = (path: string) => browser.fetch(`${gh.url}/api${path}`);
    const refreshes = op.counts.refresh;
    op.refresh = 'jwks-down';
    try {
      clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
      await expectError(await api('/jwks-down/1'), 401, 'session_expired');
      clock.advance(60_000);
      await expectError(await api('/jwks-down/2'), 401, 'unauthorized');
      expect(op.counts.refresh - refreshes, 'refresh calls').toBe(1);
      const logged = gh.logs.findLast((l) => l['msg'] === 'token refresh refused; session ended');
      expect(String(logged?.['reason'])).toMatch(/^token endpoint answered, then fetch failed/);
    } finally {
      op.refresh = 'valid';
    }
  });
});
