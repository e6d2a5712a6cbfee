import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { reservePort, startGatehouse, writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { jsonOf, readSession, redisClient, sessionCookieOf, storeKeyOf } from '../helpers/token-kit.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { expectError } from '../helpers/expect-error.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';

/**
 * The operator API: it exists only with ADMIN_TOKEN, is authorised by X-Admin-Token alone (never a query
 * parameter, never a user's session cookie, never Authorization), and answers no-store.
 */
describe('admin API authorisation', () => {
  const redisUrl = inject('redisUrl');
  let redis: Redis;
  let backend: TestBackend;
  let idp: TestIdp;
  let gh: TestGatehouse;
  let without: TestGatehouse;
  let browser: Browser;
  let cookie: { value: string; header: string };

  beforeAll(async () => {
    redis = redisClient(redisUrl);
    backend = await startBackend();
    const [p1, p2] = [await reservePort(), await reservePort()];
    idp = await startIdp({ gatehouseBaseUrls: [p1.url, p2.url] });
    const yaml = `mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`;
    gh = await startGatehouse({ idp, redisUrl, port: p1.port, yaml, env: { ADMIN_TOKEN } });
    without = await startGatehouse({ idp, clientId: `${idp.clientId}-1`, redisUrl, port: p2.port, yaml });
    browser = new Browser();
    await browser.login(gh.url, 'ada');
    cookie = sessionCookieOf(browser, gh);
  });
  afterAll(async () => {
    await Promise.all([gh?.close(), without?.close()]);
    await Promise.all([idp?.close(), backend?.close()]);
    redis?.disconnect();
  });

  const revokeSession = (key: string, headers: Record<string, string> = {}, base = gh.url, query = '') =>
    fetch(`${base}/admin/sessions/${key}${query}`, { method: 'DELETE', headers });
  const revokeUser = (sub: string, headers: Record<string, string> = {}, base = gh.url, query = '') =>
    fetch(`${base}/admin/users/${encodeURIComponent(sub)}/revoke${query}`, { method: 'POST', headers });
  const apiStatus = async () => {
    const res = await fetch(`${gh.url}/api/admin-check`, { headers: { cookie: cookie.header } });
    await res.body?.cancel();
    return res.status;
  };

  it('without ADMIN_TOKEN the routes do not exist, whatever token is sent', async () => {
    for (const res of [
      await revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN }, without.url),
      await revokeUser('ada', { 'x-admin-token': ADMIN_TOKEN }, without.url),
      await revokeUser('ada', {}, without.url),
    ]) {
      const body = await jsonOf(res);
      expectError(body, 404, 'not_found');
    }
  });

  it('ADMIN_TOKEN shorter than 32 characters stops start-up with a configuration error naming it', () => {
    const env = {
      NODE_ENV: 'test', APP_BASE_URL: 'http://127.0.0.1:8080', OIDC_ISSUER: idp.issuer, OIDC_CLIENT_ID: idp.clientId,
      OIDC_CLIENT_SECRET: idp.clientSecret, REDIS_URL: redisUrl, GATEHOUSE_CONFIG: writeConfigFile('mappings: []\n'), ADMIN_TOKEN: 'short-token',
    };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.join('\n')).toMatch(/ADMIN_TOKEN/);
  });

  const refusals: Array<[string, () => Promise<Response>]> = [
    ['no token', () => revokeSession(storeKeyOf(cookie.value))],
    ['an empty token', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': '' })],
    ['a wrong token of the same length', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': `${ADMIN_TOKEN.slice(0, -1)}X` })],
    ['the right token with a suffix', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': `${ADMIN_TOKEN}x` })],
    ['a prefix of the right token', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN.slice(0, 32) })],
    ['the token as Authorization: Bearer', () => revokeSession(storeKeyOf(cookie.value), { authorization: `Bearer ${ADMIN_TOKEN}` })],
    ['the token in the query string', () => revokeSession(storeKeyOf(cookie.value), {}, gh.url, `?token=${ADMIN_TOKEN}`)],
    ['the token in the query string as admin_token', () => revokeUser('ada', {}, gh.url, `?admin_token=${ADMIN_TOKEN}`)],
    ['the token in the query string even beside the header', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN }, gh.url, `?x-admin-token=${ADMIN_TOKEN}`)],
    ['a logged-in user\'s session cookie', () => revokeUser('ada', { cookie: cookie.header })],
    ['a session cookie and a wrong token', () => revokeSession(storeKeyOf(cookie.value), { cookie: cookie.header, 'x-admin-token': 'nope' })],
  ];

  it.each(refusals)('%s → 401 unauthorized, no-store, nothing revoked', async (_name, send) => {
    const res = await send();
    const body = await jsonOf(res);
    expectError(body, 401, 'unauthorized');
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(await readSession(redis, gh, cookie.value)).toBeDefined();
    expect(await apiStatus()).toBe(200);
  });

  it('malformed ids are 400 with the right token', async () => {
    for (const res of [
      await revokeSession('not-a-session-id', { 'x-admin-token': ADMIN_TOKEN }),
      await revokeSession(`${storeKeyOf(cookie.value)}x`, { 'x-admin-token': ADMIN_TOKEN }),
      await revokeUser('a'.repeat(300), { 'x-admin-token': ADMIN_TOKEN }),
    ]) {
      expectError(await jsonOf(res), 400, 'bad_request');
    }
    expect(await apiStatus()).toBe(200);
  });

  it('the right header revokes: 200, no-store, the session is gone', async () => {
    const key = storeKeyOf(cookie.value);
    const res = await revokeSession(key, { 'x-admin-token': ADMIN_TOKEN });
    const body = await jsonOf(res);
    expect(body.status).toBe(200);
    expect(body.body).toMatchObject({ revoked: 'session', id: key });
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(await readSession(redis, gh, cookie.value)).toBeUndefined();
    expect(await apiStatus()).toBe(401);
  });
});
