import { connect } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { openWs, send, sendRaw, startWsBackend, type RawResponse } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { SESSION_COOKIE, useBareProxy, useProxyStack, type Echoed } from '../helpers/proxy-stack.ts';

/**
 * CK-TOSS (catalogue #55; OWASP Session Management Cheat Sheet, "cookie tossing"): anything that can set a
 * cookie for a parent domain (a sibling subdomain) can plant a second session cookie with a more specific
 * Path, which the browser sends first. If Gatehouse took the first copy, the victim's calls would run in the
 * attacker's session. A request carrying the session cookie's name more than once has no session, and gets a
 * clearing Set-Cookie. Names match exactly: a lookalike name is another cookie, never a second copy.
 */
describe('a duplicated session cookie (cookie tossing) gives no session', () => {
  const stack = useProxyStack({
    backends: { ws: startWsBackend },
    routes: (url, { ws }) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/optional', backend: url, auth: 'optional' },
      { frontendHost: '*', pathPrefix: '/ws', backend: ws.url },
      { frontendHost: '*', pathPrefix: '/ws-optional', backend: ws.url, auth: 'optional' },
    ],
  });
  let alice: string;
  let mallory: string;
  beforeAll(async () => {
    alice = stack.sessionCookie;
    mallory = await stack.loginAs('mallory');
  });

  const setCookies = (headers: IncomingHttpHeaders): string[] => {
    const v = headers['set-cookie'];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  /** The host-only clearing cookie a __Host- session needs: same name, Path=/, Secure, no Domain, expired. */
  const expectClearing = (headers: IncomingHttpHeaders) => {
    const ours = setCookies(headers).filter((c) => c.startsWith(`${SESSION_COOKIE}=`));
    expect(ours).toHaveLength(1);
    const attrs = (ours[0] ?? '').split(';').map((a) => a.trim());
    expect(attrs[0]).toBe(`${SESSION_COOKIE}=`);
    expect(attrs).toEqual(expect.arrayContaining(['Path=/', 'Secure', 'Max-Age=0']));
    expect(attrs.some((a) => /^domain=/i.test(a))).toBe(false);
  };
  const backendSaw = (res: RawResponse): Echoed => JSON.parse(res.body.toString('utf8')) as Echoed;
  const lowerNames = (e: Echoed) => e.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
  const subOf = (e: Echoed) => {
    const i = e.rawHeaders.findIndex((h, j) => j % 2 === 0 && h.toLowerCase() === 'x-user-sub');
    return i === -1 ? undefined : e.rawHeaders[i + 1];
  };

  it('the real session alone works, with no clearing cookie (baseline)', async () => {
    const res = await send(stack.url, { path: '/api/x', headers: ['Cookie', alice] });
    expect(res.status).toBe(200);
    expect(subOf(backendSaw(res))).toBe('alice');
    expect(setCookies(res.headers)).toEqual([]);
  });

  it.each([
    ['the planted copy first', () => ['Cookie', `${mallory}; ${alice}`]],
    ['the planted copy last', () => ['Cookie', `${alice}; ${mallory}`]],
    ['the copies on two Cookie lines', () => ['Cookie', mallory, 'Cookie', alice]],
    ['between other cookies, without spaces', () => ['Cookie', `theme=dark;${mallory};lang=en;${alice}`]],
  ])('auth: required, %s → 401 unauthorized, a clearing Set-Cookie, and the backend is not called', async (_label, headers) => {
    const before = stack.backend.requests.length;
    const res = await send(stack.url, { path: '/api/x', headers: headers() });
    expectError(res, 401, 'unauthorized');
    expectClearing(res.headers);
    expect(stack.backend.requests.length).toBe(before);
  });

  it.each([
    ['the planted copy first', () => `${mallory}; ${alice}`],
    ['the planted copy last', () => `${alice}; ${mallory}`],
  ])('auth: optional, %s → proxied anonymously (no identity headers) with a clearing Set-Cookie', async (_label, cookie) => {
    const res = await send(stack.url, { path: '/api/optional/x', headers: ['Cookie', cookie()] });
    expect(res.status).toBe(200);
    const seen = backendSaw(res);
    expect(subOf(seen)).toBeUndefined();
    expect(lowerNames(seen).filter((h) => h.startsWith('x-user-'))).toEqual([]);
    expect(lowerNames(seen)).not.toContain('authorization');
    expect(JSON.stringify(seen.rawHeaders)).not.toContain(stack.sessionValue);
    expectClearing(res.headers);
  });

  it.each([
    ['the planted copy first', () => `${mallory}; ${alice}`],
    ['the planted copy last', () => `${alice}; ${mallory}`],
  ])('/auth/me, %s → 401 unauthorized with a clearing Set-Cookie', async (_label, cookie) => {
    const res = await send(stack.url, { path: '/auth/me', headers: ['Cookie', cookie()] });
    expectError(res, 401, 'unauthorized');
    expectClearing(res.headers);
  });

  it('a WebSocket upgrade with two copies is refused: 401 unauthorized with a clearing Set-Cookie, no backend connection', async () => {
    const connections = stack.backends.ws.connections;
    const out = await openWs(`${stack.url.replace('http:', 'ws:')}/api/ws/x`, { headers: { cookie: `${mallory}; ${alice}` } });
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expectError(out, 401, 'unauthorized');
    expectClearing(out.headers);
    expect(stack.backends.ws.connections).toBe(connections);
  });

  it('a WebSocket upgrade with two copies on an auth: optional route opens anonymously, and its 101 carries the clearing Set-Cookie', async () => {
    const { hostname, port, host } = new URL(stack.url);
    const head = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      let data = '';
      socket.on('data', (c: Buffer) => {
        data += c.toString('latin1');
        const end = data.indexOf('\r\n\r\n');
        if (end !== -1) {
          socket.destroy();
          resolve(data.slice(0, end));
        }
      });
      socket.on('error', reject);
      socket.write(
        `GET /api/ws-optional/x HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: ${mallory}; ${alice}\r\n\r\n`,
      );
    });
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toContain(`\r\nset-cookie: ${SESSION_COOKIE}=; Path=/`);
    const upgrade = stack.backends.ws.upgrades.at(-1);
    expect(upgrade?.headers.has('x-user-sub')).toBe(false);
  });

  // Mallory's value under a lookalike name sits before Alice's real cookie: a parser that trimmed Unicode
  // whitespace, decoded or folded case would either pick it or see two copies. Neither may happen.
  it.each([
    ['NBSP before the name', (v: string) => `\u00a0${SESSION_COOKIE}=${v}`],
    ['NBSP after the name', (v: string) => `${SESSION_COOKIE}\u00a0=${v}`],
    ['a percent-encoded name', (v: string) => `__Host-gh%5Fsession=${v}`],
    ['another case', (v: string) => `__host-gh_session=${v}`],
    ['upper case', (v: string) => `__HOST-GH_SESSION=${v}`],
  ])('a lookalike name (%s) beside the real cookie: the real session is used', async (_label, lookalike) => {
    const malloryValue = mallory.slice(SESSION_COOKIE.length + 1);
    const res = await send(stack.url, { path: '/api/x', headers: ['Cookie', `${lookalike(malloryValue)}; ${alice}`] });
    expect(res.status).toBe(200);
    expect(subOf(backendSaw(res))).toBe('alice');
    expect(setCookies(res.headers)).toEqual([]);
  });

  it.each([
    ['ideographic space before the name', (v: string) => `\u3000${SESSION_COOKIE}=${v}`],
    ['ideographic space after the name', (v: string) => `${SESSION_COOKIE}\u3000=${v}`],
  ])('a lookalike name (%s, sent as UTF-8 bytes) beside the real cookie: the real session is used', async (_label, lookalike) => {
    const malloryValue = mallory.slice(SESSION_COOKIE.length + 1);
    const host = new URL(stack.url).host;
    const res = await sendRaw(
      stack.url,
      Buffer.from(
        `GET /api/x HTTP/1.1\r\nHost: ${host}\r\nCookie: ${lookalike(malloryValue)}; ${alice}\r\nConnection: close\r\n\r\n`,
        'utf8',
      ),
    );
    expect(res.status).toBe(200);
    expect(res.head).not.toMatch(/^set-cookie:/im);
    const seen = JSON.parse(res.body) as Echoed;
    expect(subOf(seen)).toBe('alice');
  });
});

/**
 * With SESSION_COOKIE_DOMAIN the cookie is shared with subdomains (no __Host- prefix): the clearing answer
 * covers both the Domain cookie Gatehouse sets and a host-only one.
 */
describe('a duplicated session cookie with SESSION_COOKIE_DOMAIN', () => {
  const proxy = useBareProxy({ mapping: { auth: 'optional' }, env: { SESSION_COOKIE_DOMAIN: 'app.example' } });

  it('clears the Domain cookie and the host-only one on a proxied answer', async () => {
    expect(proxy.gh.config.session.cookieName).toBe('gh_session');
    const res = await send(proxy.url, { path: '/api/x', headers: ['Cookie', 'gh_session=planted; gh_session=victim'] });
    expect(res.status).toBe(200);
    const v = res.headers['set-cookie'] ?? [];
    const ours = (Array.isArray(v) ? v : [v]).filter((c) => c.startsWith('gh_session=;'));
    expect(ours.map((c) => /;\s*Domain=([^;]*)/i.exec(c)?.[1])).toEqual([undefined, 'app.example']);
    for (const c of ours) expect(c).toMatch(/Max-Age=0/);
  });
});
