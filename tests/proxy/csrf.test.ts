import { describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { apiCall } from '../helpers/edge.ts';
import { expectError, expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { readSession, sessionCookieOf } from '../helpers/token-kit.ts';

const API_AUDIENCE = 'https://api.gatehouse.test';
const EVIL = ['Origin', 'https://evil.example'];

/**
 * Which requests the CSRF check (stage 7) applies to: unsafe methods carrying cookies. A bearer token is exempt (a
 * page on another site cannot attach one); `auth: none` is checked when cookies ride along (its backend gets them,
 * and may act on them), and a cookieless call (a webhook, a server) passes.
 */
describe('CSRF applies to cookie-carrying requests only', () => {
  const stage = useStage({
    idp: { jwtAccessTokenAudience: API_AUDIENCE },
    backends: { backend: startBackend },
    yaml: ({ backend }) =>
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/public', backend: backend.url, auth: 'none' },
        { frontendHost: '*', pathPrefix: '/maybe', backend: backend.url, auth: 'optional' },
        { frontendHost: '*', backend: backend.url },
      ]),
    gatehouse: { env: { API_AUDIENCE } },
  });
  const reached = () => stage.backends.backend.requests.length;
  let login: Promise<{ cookie: string; token: string }> | undefined;
  const session = () =>
    (login ??= (async () => {
      const browser = new Browser();
      await browser.login(stage.gh.url, 'alice');
      const cookie = sessionCookieOf(browser, stage.gh);
      const token = (await readSession(stage.redis, stage.gh, cookie.value))?.tokens.accessToken as string;
      expect(decodeJwt(token).aud).toBe(API_AUDIENCE);
      return { cookie: cookie.header, token };
    })());

  it('a bearer token with other cookies, from a foreign origin, is exempt', async () => {
    const { token } = await session();
    const res = await apiCall(stage.gh.url, { cookie: 'theme=dark', headers: [...EVIL, 'Authorization', `Bearer ${token}`] });
    expect(res.status).toBe(200);
    expect(stage.backends.backend.last().headers.get('x-user-sub')).toEqual(['alice']);
  });

  it('a bearer token beside the session cookie: the session is the identity, so the request is checked', async () => {
    const { cookie, token } = await session();
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stage.gh.url, { cookie, headers: [...EVIL, 'Authorization', `Bearer ${token}`] }),
      403,
      'csrf',
    );
  });

  it('auth: optional without a session but with cookies → checked (403 csrf); an invalid bearer token exempts nothing', async () => {
    for (const extra of [[], ['Authorization', 'Bearer not-a-token']])
      await expectErrorUnforwarded(
        reached,
        () => apiCall(stage.gh.url, { path: '/api/maybe/x', cookie: 'theme=dark', headers: [...EVIL, ...extra] }),
        403,
        'csrf',
      );
  });

  it('auth: none with cookies → checked; without cookies (a webhook) → forwarded', async () => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stage.gh.url, { path: '/api/public/hook', cookie: 'theme=dark', headers: EVIL }),
      403,
      'csrf',
    );
    const hook = await apiCall(stage.gh.url, { path: '/api/public/hook', headers: EVIL });
    expect(hook.status).toBe(200);
    const bare = await apiCall(stage.gh.url, { path: '/api/public/hook' });
    expect(bare.status).toBe(200);
  });

  it('auth: required without a session is 401 before any CSRF check', async () => {
    expectError(await apiCall(stage.gh.url, { cookie: 'theme=dark', headers: EVIL }), 401, 'unauthorized');
  });
});
