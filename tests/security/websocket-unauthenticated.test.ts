import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { openWs, startWsBackend } from '../helpers/backends.ts';
import { SESSION_COOKIE, useProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-NOAUTH (catalogue #96; http-proxy-middleware README "External WebSocket upgrade"): upgrades bypass
 * Express middleware, so the upgrade handler must run the same admission: 401 written on the socket, then
 * closed, and nothing proxied.
 */
describe('WebSocket upgrade without a valid session', () => {
  const stack = useProxyStack({ backend: startWsBackend });

  const wsUrl = () => `${stack.url.replace('http:', 'ws:')}/api/ws`;

  it.each([
    ['no cookie', undefined],
    ['a malformed cookie', `${SESSION_COOKIE}=not-a-session`],
    ['an unknown session id', `${SESSION_COOKIE}=${'A'.repeat(43)}`],
    ['the cookie under another name', 'gh_session=x'],
    ['a forged bearer token', undefined, 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.'],
  ])('%s → HTTP 401 unauthorized on the socket, no backend connection', async (_name, cookie, authorization?: string) => {
    const connections = stack.backend.connections;
    const headers: Record<string, string> = {};
    if (cookie) headers['cookie'] = cookie;
    if (authorization) headers['authorization'] = authorization;
    const out = await openWs(wsUrl(), { headers });
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expectError(out, 401, 'unauthorized');
    expect(out.headers['connection']).toBe('close');
    expect(stack.backend.connections).toBe(connections);
  });

  it('a refused upgrade does not keep the socket for a client that never closes its side', async () => {
    const { hostname, port, host } = new URL(stack.url);
    const server = stack.gh.app.server;
    const connections = () => new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)));
    const before = await connections();
    // allowHalfOpen: these clients read the 401 and Gatehouse's FIN, and never send their own.
    const clients = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
            socket.on('error', () => {});
            socket.on('data', () => {});
            socket.once('end', () => resolve(socket));
            socket.write(
              `GET /api/ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
            );
          }),
      ),
    );
    // Past Gatehouse's grace after the refusal, its side of each is gone.
    await new Promise((r) => setTimeout(r, 2500));
    // (Fewer, not equal: keep-alive connections of earlier tests may have closed meanwhile.)
    expect(await connections()).toBeLessThanOrEqual(before);
    for (const c of clients) c.destroy();
  });

  it('a session that was logged out no longer opens a WebSocket', async () => {
    const cookie = await stack.loginAs('mallory');
    const value = cookie.split('=')[1] ?? '';
    const session = await stack.gh.app.sessions.load(parseSessionSecret(value));
    expect(session).toBeDefined();
    await stack.gh.app.sessions.destroy(session?.storeKey ?? '');
    const connections = stack.backend.connections;
    const out = await openWs(wsUrl(), { headers: { cookie } });
    expect(out.ok).toBe(false);
    if (!out.ok) expectError(out, 401, 'unauthorized');
    expect(stack.backend.connections).toBe(connections);
  });
});
