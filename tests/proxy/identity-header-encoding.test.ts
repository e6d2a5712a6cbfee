import { describe, expect, it } from 'vitest';
import { header, send, startBackend, startWsBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { mappingsYaml, SESSION_COOKIE } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { openWs, sessionCookieOf } from '../helpers/token-kit.ts';

/**
 * Identity header values that are not printable ASCII (issue 16): a user called José is encoded, not dropped
 * (identityHeaderEncoding: rfc8187 by default, or percent), in a form a backend can decode without ambiguity.
 */
describe('identity header encoding', () => {
  const stage = useStage({
    idp: { accounts: { jose: { name: 'José Müller' } } },
    backends: { backend: startBackend, ws: startWsBackend },
    yaml: ({ backend, ws }) =>
      mappingsYaml([
        { frontendHost: '*', backend: backend.url },
        { frontendHost: '*', pathPrefix: '/pct', backend: backend.url, identityHeaderEncoding: 'percent' },
        { frontendHost: '*', pathPrefix: '/ws', backend: ws.url },
      ]),
  });
  const session = async (name: string) => {
    const { secret } = await stage.gh.app.sessions.create({
      claims: { sub: 'u1', email: 'u1@example.test', email_verified: true, name },
      tokens: { accessToken: 'token-u1' },
      accessTokenExpiresAt: Date.now() + 3600_000,
    });
    return `${SESSION_COOKIE}=${secret}`;
  };
  const nameSent = async (path: string, cookie: string) => {
    const res = await send(stage.gh.url, { path, headers: ['Cookie', cookie] });
    expect(res.status).toBe(200);
    return header(stage.backends.backend.last(), 'x-user-name');
  };

  it('a real login as José: UTF-8 percent-encoded after the RFC 8187 prefix by default, plain percent-encoding on request', async () => {
    const browser = new Browser();
    await browser.login(stage.gh.url, 'jose');
    const cookie = sessionCookieOf(browser, stage.gh).header;
    const sent = await nameSent('/api/x', cookie);
    expect(sent).toBe("UTF-8''Jos%C3%A9%20M%C3%BCller");
    expect(decodeURIComponent((sent as string).slice("UTF-8''".length))).toBe('José Müller');
    expect(await nameSent('/api/pct/x', cookie)).toBe('Jos%C3%A9%20M%C3%BCller');
  });

  it('ASCII passes as it is, unless it could be read as encoded: then it is encoded too', async () => {
    expect(await nameSent('/api/x', await session('Jo Smith'))).toBe('Jo Smith');
    expect(await nameSent('/api/pct/x', await session('Jo Smith'))).toBe('Jo Smith');
    // A name chosen to decode into another: "UTF-8''%41dmin" must reach an RFC 8187 decoder as itself.
    expect(await nameSent('/api/x', await session("utf-8''%41dmin"))).toBe("UTF-8''utf-8%27%27%2541dmin");
    expect(await nameSent('/api/pct/x', await session('100%41'))).toBe('100%2541');
    expect(await nameSent('/api/x', await session('100%41'))).toBe('100%41');
  });

  it('characters outside the BMP, and a lone surrogate, encode as UTF-8 (U+FFFD for the surrogate)', async () => {
    expect(await nameSent('/api/x', await session('🦊 Fox'))).toBe("UTF-8''%F0%9F%A6%8A%20Fox");
    expect(await nameSent('/api/pct/x', await session('a\ud800b'))).toBe('a%EF%BF%BDb');
  });

  it('control characters are never sent, encoded or not: the header is dropped and logged', async () => {
    const before = stage.gh.logs.length;
    expect(await nameSent('/api/x', await session('José\r\nx-user-admin: 1'))).toBeUndefined();
    expect(stage.backends.backend.last().headers.has('x-user-admin')).toBe(false);
    expect(stage.gh.logs.slice(before).some((l) => l['header'] === 'x-user-name' && /not a safe header value/.test(String(l['msg'])))).toBe(
      true,
    );
  });

  it('a WebSocket upgrade carries the same encoded value', async () => {
    const { ws } = await openWs(`${stage.gh.url}/api/ws/live`, await session('José'));
    ws.terminate();
    expect(stage.backends.ws.upgrades.at(-1)?.headers.get('x-user-name')).toEqual(["UTF-8''Jos%C3%A9"]);
  });
});
