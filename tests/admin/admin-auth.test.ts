import { beforeAll, describe, expect, inject, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { jsonOf, readSession, sessionCookieOf, storeKeyOf } from '../helpers/token-kit.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';

/**
 * The operator API: it exists only with ADMIN_TOKEN, is authorised by X-Admin-Token alone (never a query
 * parameter, never a user's session cookie, never Authorization), and answers no-store.
 */
describe('admin API authorisation', () => {
  const stage = useStage({
    backends: { backend: startBackend },
    yaml: ({ backend }) => mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
    gatehouse: { env: { ADMIN_TOKEN } },
    more: { without: { ownClient: true } },
  });
  let browser: Browser;
  let cookie: { value: string; header: string };
  beforeAll(async () => {
    browser = new Browser();
    await browser.login(stage.gh.url, 'ada');
    cookie = sessionCookieOf(browser, stage.gh);
  });

  const revokeSession = (key: string, headers: Record<string, string> = {}, base = stage.gh.url, query = '') =>
    fetch(`${base}/admin/sessions/${key}${query}`, { method: 'DELETE', headers });
  const revokeUser = (sub: string, headers: Record<string, string> = {}, base = stage.gh.url, query = '') =>
    fetch(`${base}/admin/users/${encodeURIComponent(sub)}/revoke${query}`, { method: 'POST', headers });
  const apiStatus = async () => {
    const res = await fetch(`${stage.gh.url}/api/admin-check`, { headers: { cookie: cookie.header } });
    await res.body?.cancel();
    return res.status;
  };

  it('without ADMIN_TOKEN the routes do not exist, whatever token is sent', async () => {
    for (const res of [
      await revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN }, stage.more.without.url),
      await revokeUser('ada', { 'x-admin-token': ADMIN_TOKEN }, stage.more.without.url),
      await revokeUser('ada', {}, stage.more.without.url),
    ]) {
      const body = await jsonOf(res);
      expectError(body, 404, 'not_found');
    }
  });

  it('ADMIN_TOKEN shorter than 32 characters stops start-up with a configuration error naming it', () => {
    const env = {
      NODE_ENV: 'test',
      APP_BASE_URL: 'http://127.0.0.1:8080',
      OIDC_ISSUER: stage.idp.issuer,
      OIDC_CLIENT_ID: stage.idp.clientId,
      OIDC_CLIENT_SECRET: stage.idp.clientSecret,
      REDIS_URL: inject('redisUrl'),
      GATEHOUSE_CONFIG: writeConfigFile('mappings: []\n'),
      ADMIN_TOKEN: 'short-token',
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
    [
      'a wrong token of the same length',
      () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': `${ADMIN_TOKEN.slice(0, -1)}X` }),
    ],
    ['the right token with a suffix', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': `${ADMIN_TOKEN}x` })],
    ['a prefix of the right token', () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN.slice(0, 32) })],
    ['the token as Authorization: Bearer', () => revokeSession(storeKeyOf(cookie.value), { authorization: `Bearer ${ADMIN_TOKEN}` })],
    ['the token in the query string', () => revokeSession(storeKeyOf(cookie.value), {}, stage.gh.url, `?token=${ADMIN_TOKEN}`)],
    ['the token in the query string as admin_token', () => revokeUser('ada', {}, stage.gh.url, `?admin_token=${ADMIN_TOKEN}`)],
    [
      'the token in the query string even beside the header',
      () => revokeSession(storeKeyOf(cookie.value), { 'x-admin-token': ADMIN_TOKEN }, stage.gh.url, `?x-admin-token=${ADMIN_TOKEN}`),
    ],
    ["a logged-in user's session cookie", () => revokeUser('ada', { cookie: cookie.header })],
    [
      'a session cookie and a wrong token',
      () => revokeSession(storeKeyOf(cookie.value), { cookie: cookie.header, 'x-admin-token': 'nope' }),
    ],
  ];

  it.each(refusals)('%s → 401 unauthorized, no-store, nothing revoked', async (_name, send) => {
    const res = await send();
    const body = await jsonOf(res);
    expectError(body, 401, 'admin_unauthorized');
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(await readSession(stage.redis, stage.gh, cookie.value)).toBeDefined();
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
    expect(await readSession(stage.redis, stage.gh, cookie.value)).toBeUndefined();
    expect(await apiStatus()).toBe(401);
  });
});
