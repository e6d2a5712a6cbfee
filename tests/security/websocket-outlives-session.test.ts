import { describe, expect, it } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import type { WebSocket } from 'ws';
import { closed, nextMessage, openWs, startWsBackend } from '../helpers/backends.ts';
import { sleep } from '../helpers/raw-ws.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

const IDLE_SECONDS = 2;
const MAX_AGE_SECONDS = 6;

/**
 * WS-OUTLIVES-SESSION (issue 10; OWASP WebSocket Security Cheat Sheet, "close WebSocket connections when
 * sessions expire"): a WebSocket must not be a way to keep talking past the session's absolute end, and, being
 * use of the session, its traffic rolls the idle timeout as HTTP requests do (otherwise a user active only over
 * a WebSocket is logged out under their own feet); a session that idles out all the same (no event announces
 * it: its key just expires) takes its WebSockets with it. The settings are the smallest that still tell the
 * cases apart.
 */
describe('a WebSocket and the lifetime of its session', () => {
  const stack = useProxyStack({
    backend: startWsBackend,
    env: { SESSION_IDLE_TTL_SECONDS: String(IDLE_SECONDS), SESSION_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS) },
  });

  const open = async (cookie: string): Promise<WebSocket> => {
    const out = await openWs(`${stack.url.replace('http:', 'ws:')}/api/live`, { headers: { cookie } });
    if (!out.ok) throw new Error(`upgrade refused: ${out.status} ${out.body}`);
    return out.ws;
  };
  const me = async (cookie: string) => {
    const res = await fetch(`${stack.url}/auth/me`, { headers: { cookie } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** One echoed message every 200 ms for `ms`, or until the socket closes. */
  const chat = async (ws: WebSocket, ms: number) => {
    const until = Date.now() + ms;
    for (let i = 0; Date.now() < until && ws.readyState === ws.OPEN; i++) {
      const echoed = nextMessage(ws, 2000).catch(() => undefined);
      ws.send(`tick ${i}`);
      await echoed;
      await sleep(200);
    }
  };

  it('traffic on an open WebSocket keeps the session alive past its idle timeout', async () => {
    const active = await stack.loginAs('ada');
    const quiet = await stack.loginAs('quentin');
    const ws = await open(active);
    await chat(ws, (IDLE_SECONDS + 1.5) * 1000);
    expect(ws.readyState).toBe(ws.OPEN);
    expect((await me(active)).status).toBe(200);
    // The same wait without WebSocket traffic is past the idle timeout: the setting really is that short.
    const idle = await me(quiet);
    expectError(idle, 401, 'unauthorized');
    ws.close();
  });

  it('a silent WebSocket is closed with 1008 when its session idles out', async () => {
    const cookie = await stack.loginAs('sid');
    const ws = await open(cookie);
    let closedAt = 0;
    ws.once('close', () => {
      closedAt = Date.now();
    });
    const end = closed(ws, IDLE_SECONDS * 1000 + 2000);
    await sleep(300);
    const session = await stack.gh.app.sessions.load(parseSessionSecret(cookie.slice(cookie.indexOf('=') + 1)), { fresh: true });
    const idleEnd = session?.idleExpiresAt ?? 0;
    expect(idleEnd).toBeGreaterThan(Date.now());
    expect((await end).code).toBe(1008);
    expect(closedAt).toBeGreaterThanOrEqual(idleEnd - 50);
    expect(closedAt - idleEnd).toBeLessThan(1000);
    expectError(await me(cookie), 401, 'unauthorized');
  });

  it("is closed with 1008 at the session's absolute end, however active it is", async () => {
    const cookie = await stack.loginAs('abe');
    const session = await stack.gh.app.sessions.load(parseSessionSecret(cookie.slice(cookie.indexOf('=') + 1)));
    const expiresAt = session?.expiresAt ?? 0;
    expect(expiresAt).toBeGreaterThan(Date.now());
    const ws = await open(cookie);
    let closedAt = 0;
    ws.once('close', () => {
      closedAt = Date.now();
    });
    const end = closed(ws, MAX_AGE_SECONDS * 1000 + 2000);
    await chat(ws, MAX_AGE_SECONDS * 1000 + 1500);
    const { code } = await end;
    expect(code).toBe(1008);
    expect(closedAt).toBeGreaterThanOrEqual(expiresAt - 50);
    expect(closedAt - expiresAt).toBeLessThan(1000);
    expectError(await me(cookie), 401, 'unauthorized');
  });
});
