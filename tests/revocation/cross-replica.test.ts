import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { header } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { useReplicas } from '../helpers/replicas.ts';
import {
  jsonOf,
  makeSigningKey,
  nowSeconds,
  openWs,
  readSession,
  sessionCookieOf,
  signJwt,
  sleep,
  storeKeyOf,
  waitUntil,
  type OpenWs,
  type SigningKey,
} from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';

const ADMIN_TOKEN = 'cross-replica-admin-token-0123456789abcdef';
const API_AUDIENCE = 'https://api.gatehouse.test';
const SLA_MS = 1000;

/**
 * REVOKE (52) and WS-REVOKE (98): a revocation on replica A (admin session revocation, logout, user revocation,
 * a jti on the blocklist) holds on replica B within 1 s although B's caches are warm, and the WebSockets B holds
 * for the ended sessions close with 1008 within that second.
 */
describe('revocation across replicas', () => {
  let rsa: SigningKey;
  beforeAll(async () => {
    rsa = await makeSigningKey('RS256');
  });
  const stage = useReplicas(() => ({
    idp: { jwtAccessTokenAudience: API_AUDIENCE, jwks: { keys: [rsa.privateJwk] } },
    env: { ADMIN_TOKEN, API_AUDIENCE, TOKEN_REFRESH_SKEW_SECONDS: '0' },
  }));

  async function login(user: string) {
    const browser = new Browser();
    await browser.login(stage.a.url, user);
    const cookie = sessionCookieOf(browser, stage.a);
    return { browser, cookie };
  }
  const status = async (gh: TestGatehouse, headers: Record<string, string>, path = '/api/xr') => {
    const res = await fetch(`${gh.url}${path}`, { headers });
    await res.body?.cancel();
    return res.status;
  };
  /** Warms B's session and blocklist caches for this cookie, and opens a WebSocket on B. */
  async function warmOnB(cookieHeader: string): Promise<OpenWs> {
    for (let i = 0; i < 3; i++) expect(await status(stage.b, { cookie: cookieHeader })).toBe(200);
    const socket = await openWs(`${stage.b.url}/api/ws/xr`, cookieHeader);
    expect(stage.b.app.websockets.size()).toBeGreaterThan(0);
    return socket;
  }
  async function expectEndedOnB(cookieHeader: string, socket: OpenWs, since: number) {
    await waitUntil(async () => (await status(stage.b, { cookie: cookieHeader })) === 401, SLA_MS, 'replica B to refuse the session', 10);
    expect(Date.now() - since).toBeLessThan(SLA_MS);
    const closed = await Promise.race([socket.closed, sleep(SLA_MS).then(() => undefined)]);
    expect(closed?.code).toBe(1008);
    expect((closed?.at ?? Infinity) - since).toBeLessThan(SLA_MS);
    // And it stays refused, on both replicas, for HTTP and upgrades alike.
    for (const gh of [stage.a, stage.b, stage.b]) {
      const res = await jsonOf(await fetch(`${gh.url}/api/xr`, { headers: { cookie: cookieHeader } }));
      expect(res.status).toBe(401);
      expect(['unauthorized', 'session_expired']).toContain(res.body['error']);
    }
    await expect(openWs(`${stage.b.url}/api/ws/xr`, cookieHeader)).rejects.toMatchObject({ status: 401 });
  }

  it('DELETE /admin/sessions/:id on A: B refuses the session and closes its WebSocket with 1008 within 1 s', async () => {
    const { cookie } = await login('kim');
    const socket = await warmOnB(cookie.header);
    const since = Date.now();
    const res = await jsonOf(
      await fetch(`${stage.a.url}/admin/sessions/${storeKeyOf(cookie.value)}`, {
        method: 'DELETE',
        headers: { 'x-admin-token': ADMIN_TOKEN },
      }),
    );
    expect(res.status).toBe(200);
    await expectEndedOnB(cookie.header, socket, since);
    expect(await readSession(stage.redis, stage.a, cookie.value)).toBeUndefined();
    expect(await stage.redis.pttl(`${stage.a.config.redis.keyPrefix}rv:s:${storeKeyOf(cookie.value)}`)).toBeGreaterThan(0);
  });

  it('logout on A: B refuses the session and closes its WebSocket with 1008 within 1 s', async () => {
    const { browser, cookie } = await login('lou');
    const socket = await warmOnB(cookie.header);
    const since = Date.now();
    const out = await browser.fetch(`${stage.a.url}/auth/logout`, { method: 'POST' });
    await out.body?.cancel();
    expect(out.status).toBe(200);
    await expectEndedOnB(cookie.header, socket, since);
  });

  it('POST /admin/users/:sub/revoke on A: every session and earlier bearer token of the user is refused on B; others and later logins are not', async () => {
    const first = await login('dan');
    const second = await login('dan');
    const bystander = await login('erin');
    const socket = await warmOnB(second.cookie.header);
    expect(await status(stage.b, { cookie: first.cookie.header })).toBe(200);
    expect(await status(stage.b, { cookie: bystander.cookie.header })).toBe(200);
    const accessToken = (await readSession(stage.redis, stage.a, first.cookie.value))?.tokens.accessToken as string;
    expect(decodeJwt(accessToken).sub).toBe('dan');
    expect(await status(stage.b, { authorization: `Bearer ${accessToken}` })).toBe(200);

    const since = Date.now();
    const res = await jsonOf(
      await fetch(`${stage.a.url}/admin/users/dan/revoke`, {
        method: 'POST',
        headers: { 'x-admin-token': ADMIN_TOKEN },
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ revoked: 'user', sub: 'dan', sessions: 2 });
    await expectEndedOnB(second.cookie.header, socket, since);
    expect(await status(stage.b, { cookie: first.cookie.header })).toBe(401);
    // A bearer token issued before the revocation is refused too (it is not tied to any session).
    const bearer = await jsonOf(await fetch(`${stage.b.url}/api/xr/bearer-after`, { headers: { authorization: `Bearer ${accessToken}` } }));
    expectError(bearer, 401, 'unauthorized');
    expect(stage.backend.requests.filter((r) => r.url === '/xr/bearer-after')).toHaveLength(0);
    expect(await status(stage.b, { cookie: bystander.cookie.header })).toBe(200);

    // Not a ban: a login after the revocation works on both replicas, and so does a token issued after it.
    const again = await login('dan');
    expect(await status(stage.b, { cookie: again.cookie.header })).toBe(200);
    expect(await status(stage.a, { cookie: again.cookie.header })).toBe(200);
    await sleep(1000 - (Date.now() % 1000) + 20);
    const later = await signJwt(rsa, {
      iss: stage.idp.issuer,
      aud: API_AUDIENCE,
      sub: 'dan',
      iat: nowSeconds(),
      exp: nowSeconds() + 60,
      jti: randomUUID(),
    });
    expect(await status(stage.b, { authorization: `Bearer ${later}` })).toBe(200);
  });

  it('a jti put on the blocklist on A: B never forwards that token again and refreshes the session instead', async () => {
    const { cookie } = await login('jon');
    const stored = await readSession(stage.redis, stage.a, cookie.value);
    const revoked = `Bearer ${stored?.tokens.accessToken}`;
    expect(await status(stage.b, { cookie: cookie.header }, '/api/xr/jti-warm')).toBe(200);
    expect(header(stage.backend.last(), 'authorization')).toBe(revoked);

    const since = Date.now();
    await stage.a.app.blocklist.revokeJti(stored?.record['atJti'] as string, Date.now() + 60_000);
    const seen: Array<string | undefined> = [];
    await waitUntil(
      async () => {
        expect(await status(stage.b, { cookie: cookie.header }, '/api/xr/jti')).toBe(200);
        seen.push(header(stage.backend.last(), 'authorization'));
        return seen.at(-1) !== revoked;
      },
      SLA_MS,
      'B to stop forwarding the revoked token',
      10,
    );
    expect(Date.now() - since).toBeLessThan(SLA_MS);
    for (let i = 0; i < 3; i++) {
      expect(await status(stage.b, { cookie: cookie.header }, '/api/xr/jti')).toBe(200);
      expect(header(stage.backend.last(), 'authorization')).not.toBe(revoked);
    }
    const fresh = await readSession(stage.redis, stage.a, cookie.value);
    expect(fresh?.record['atJti']).not.toBe(stored?.record['atJti']);
  });
});
