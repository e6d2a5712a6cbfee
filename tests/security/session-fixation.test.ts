import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';
import { startBackend } from '../helpers/backends.ts';

const SESSION = '__Host-gh_session';

describe('session fixation and session ids the server never issued (OWASP Session Management)', () => {
  const stage = useStage({
    backends: {
      backend: () =>
        startBackend((_req, res) => {
          res.end('{}');
          return true;
        }),
    },
    yaml: ({ backend }) => `defaultBackend: "${backend.url}"\nmappings: []\n`,
  });

  const storeKey = (id: string) => `${stage.gh.config.redis.keyPrefix}s:${createHash('sha256').update(id).digest('base64url')}`;
  const me = (cookie: string) => fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${cookie}` } });
  const api = (cookie: string) => fetch(`${stage.gh.url}/api/orders`, { headers: { cookie: `${SESSION}=${cookie}` } });

  it('logging in again issues a new id and kills the one the browser held', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'alice');
    const a = browser.cookie(stage.gh.url, SESSION) ?? '';
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await stage.redis.exists(storeKey(a))).toBe(1);

    await browser.login(stage.gh.url, 'alice');
    const b = browser.cookie(stage.gh.url, SESSION) ?? '';
    expect(b).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b).not.toBe(a);

    const old = await me(a);
    await expectError(old, 401, 'unauthorized');
    expect(await stage.redis.exists(storeKey(a))).toBe(0);
    expect((await me(b)).status).toBe(200);
  });

  it('a session of another user held by the browser is destroyed when someone logs in (shared computer)', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'alice');
    const alice = browser.cookie(stage.gh.url, SESSION) ?? '';
    // alice signed out at the IdP only (its cookies are gone); Gatehouse's cookie is still in the browser.
    browser.jars.delete(new URL(stage.idp.issuer).origin);
    await browser.login(stage.gh.url, 'bob');
    const bob = browser.cookie(stage.gh.url, SESSION) ?? '';
    expect(bob).not.toBe(alice);
    await expectError(await me(alice), 401, 'unauthorized');
    const res = await me(bob);
    expect(((await res.json()) as { user: { sub: string } }).user.sub).toBe('bob');
  });

  it('a planted, well-formed id the server never issued is 401 and never becomes a session, before or after login', async () => {
    const planted = randomBytes(32).toString('base64url');
    const before = await me(planted);
    await expectError(before, 401, 'unauthorized');
    const hitsBefore = stage.backends.backend.requests.length;
    const apiRes = await api(planted);
    await expectError(apiRes, 401, 'unauthorized');
    expect(stage.backends.backend.requests.length).toBe(hitsBefore);

    const victim = new Browser();
    victim.setCookie(stage.gh.url, SESSION, planted);
    await victim.login(stage.gh.url, 'alice');
    const issued = victim.cookie(stage.gh.url, SESSION);
    expect(issued).toBeDefined();
    expect(issued).not.toBe(planted);
    await expectError(await me(planted), 401, 'unauthorized');
    expect(await stage.redis.exists(storeKey(planted))).toBe(0);
  });

  it.each([
    ['*', '*'],
    ['sess:*', 'sess:*'],
    ['5 KB of A', 'A'.repeat(5 * 1024)],
    ['%0d%0a', '%0d%0a'],
    ['not base64url', 'abc+/=def!ghi$jkl&mno(pqr)stu,vwx;yz012345678'],
    ['43 chars with a dot', `${'A'.repeat(42)}.`],
    ['44 chars', 'A'.repeat(44)],
    ['empty', ''],
    ['quoted', `"${'A'.repeat(43)}"`],
  ])('a malformed id (%s) is 401 unauthorized, never 500, and creates nothing', async (_name, value) => {
    const keysBefore = await stage.redis.keys(`${stage.gh.config.redis.keyPrefix}s:*`);
    for (const res of [await me(value), await api(value)]) {
      await expectError(res, 401, 'unauthorized');
    }
    const keysAfter = await stage.redis.keys(`${stage.gh.config.redis.keyPrefix}s:*`);
    expect(keysAfter.filter((k) => !keysBefore.includes(k))).toEqual([]);
    expect((await fetch(`${stage.gh.url}/healthz`)).status).toBe(200);
  });
});
