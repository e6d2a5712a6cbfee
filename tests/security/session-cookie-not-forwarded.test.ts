import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { SESSION_COOKIE, useProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * The session cookie is a bearer credential for the whole BFF: a backend (or its logs) that sees it could
 * replay it. Gatehouse's own cookies are removed from Cookie on every route; the app's cookies pass.
 */
describe('Gatehouse cookies never reach a backend', () => {
  const stack = useProxyStack({
    routes: (url) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/public', backend: url, auth: 'none' },
    ],
  });

  const cookiesSeen = () => stack.backend.last().headers.get('cookie') ?? [];

  it.each(['/api/x', '/api/public/x'])('%s: only the app cookies pass', async (path) => {
    const v = stack.sessionValue;
    const cases: Array<[string[], string[]]> = [
      [['Cookie', `${SESSION_COOKIE}=${v}`], []],
      [['Cookie', `theme=dark; ${SESSION_COOKIE}=${v}; __Host-gh_login=tx123; lang=en`], ['theme=dark; lang=en']],
      [['Cookie', `${SESSION_COOKIE}=${v};theme=dark`], ['theme=dark']],
      [['Cookie', 'a=1', 'Cookie', `${SESSION_COOKIE}=${v}`], ['a=1']],
      [['Cookie', `x=${SESSION_COOKIE}; ${SESSION_COOKIE}=${v}`], [`x=${SESSION_COOKIE}`]],
    ];
    for (const [headers, expected] of cases) {
      const res = await send(stack.url, { path, headers });
      expect(res.status, JSON.stringify(headers)).toBe(200);
      expect(cookiesSeen(), JSON.stringify(headers)).toEqual(expected);
      expect(JSON.stringify(stack.backend.last().rawHeaders)).not.toContain(v);
    }
  });

  // Not Gatehouse's cookie to read (readCookie matches the name byte for byte), but a backend parser that trims
  // cookie names would read these as the session cookie: they are removed all the same.
  it.each([`${SESSION_COOKIE} =`, `${SESSION_COOKIE}\t=`, `${SESSION_COOKIE}  = `])(
    '/api/public/x: %j is not forwarded',
    async (spelled) => {
      const res = await send(stack.url, { path: '/api/public/x', headers: ['Cookie', `${spelled}${stack.sessionValue}; theme=dark`] });
      expect(res.status).toBe(200);
      expect(cookiesSeen()).toEqual(['theme=dark']);
      expect(JSON.stringify(stack.backend.last().rawHeaders)).not.toContain(stack.sessionValue);
    },
  );

  // A duplicated session cookie (cookie tossing) gives no session: where auth is required nothing is forwarded;
  // where it is not, neither copy reaches the backend.
  it('a duplicated session cookie: refused on /api/x, stripped on /api/public/x', async () => {
    const cookie = `${SESSION_COOKIE}=${stack.sessionValue}; ${SESSION_COOKIE}=planted; theme=dark`;
    const before = stack.backend.requests.length;
    const refused = await send(stack.url, { path: '/api/x', headers: ['Cookie', cookie] });
    expectError(refused, 401, 'unauthorized');
    expect(stack.backend.requests.length).toBe(before);
    const passed = await send(stack.url, { path: '/api/public/x', headers: ['Cookie', cookie] });
    expect(passed.status).toBe(200);
    expect(cookiesSeen()).toEqual(['theme=dark']);
    expect(JSON.stringify(stack.backend.last().rawHeaders)).not.toContain(stack.sessionValue);
  });
});
