import { describe, expect, it } from 'vitest';
import { closed, openWs, send, startWsBackend } from '../helpers/backends.ts';
import { closedPort, useBareProxy } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-ERRORS (catalogue #102; node-http-proxy #1468/#1439: an unhandled ECONNRESET killed the process):
 * backend resets, unreachable targets and refused upgrades end the client socket cleanly; the process lives.
 */
describe('WebSocket backend failures', () => {
  const proxy = useBareProxy({
    backend: () =>
      startWsBackend({
        reject: (req, socket) => {
          if (req.url !== '/reset-during-handshake') return false;
          socket.destroy();
          return true;
        },
      }),
    backends: { down: closedPort },
    routes: (url, { down }) => [
      { frontendHost: '*', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/down', backend: down.url, auth: 'none' },
    ],
  });

  const wsUrl = (path: string) => `${proxy.url.replace('http:', 'ws:')}${path}`;

  it('a backend reset mid-session closes the client socket', async () => {
    const index = proxy.backend.sockets.length;
    const out = await openWs(wsUrl('/api/chat'));
    if (!out.ok) throw new Error('refused');
    const server = await proxy.backend.waitForSocket(index);
    const done = closed(out.ws);
    (server as unknown as { _socket: { resetAndDestroy(): void } })._socket.resetAndDestroy();
    expect((await done).code).toBe(1006);
  });

  it('a backend reset during the handshake → 502 bad_gateway', async () => {
    const out = await openWs(wsUrl('/api/reset-during-handshake'));
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expectError(out, 502, 'bad_gateway');
    }
  });

  it('an unreachable target → 502 bad_gateway', async () => {
    const out = await openWs(wsUrl('/api/down/chat'));
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expectError(out, 502, 'bad_gateway');
    }
  });

  it('a client that vanishes mid-handshake does not take the process down', async () => {
    const { connect } = await import('node:net');
    const u = new URL(proxy.url);
    const sock = connect(Number(u.port), u.hostname);
    await new Promise((r) => sock.once('connect', r));
    sock.write(
      `GET /api/chat HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    sock.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await send(proxy.url, { path: '/healthz' })).status).toBe(200);
  });
});
