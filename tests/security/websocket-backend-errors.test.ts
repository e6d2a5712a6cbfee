import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closed, closedPortUrl, openWs, send, startWsBackend, type TestWsBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-ERRORS (catalogue #102; node-http-proxy #1468/#1439: an unhandled ECONNRESET killed the process):
 * backend resets, unreachable targets and refused upgrades end the client socket cleanly; the process lives.
 */
describe('WebSocket backend failures', () => {
  let backend: TestWsBackend;
  let gh: TestGatehouse;
  beforeAll(async () => {
    backend = await startWsBackend({
      reject: (req, socket) => {
        if (req.url !== '/reset-during-handshake') return false;
        socket.destroy();
        return true;
      },
    });
    gh = await startBareGatehouse(mappingsYaml([
      { frontendHost: '*', backend: backend.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/down', backend: await closedPortUrl(), auth: 'none' },
    ]));
  });
  afterAll(async () => {
    await gh?.close();
    await backend?.close();
  });

  const wsUrl = (path: string) => `${gh.url.replace('http:', 'ws:')}${path}`;

  it('a backend reset mid-session closes the client socket', async () => {
    const index = backend.sockets.length;
    const out = await openWs(wsUrl('/api/chat'));
    if (!out.ok) throw new Error('refused');
    const server = await backend.waitForSocket(index);
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
    const u = new URL(gh.url);
    const sock = connect(Number(u.port), u.hostname);
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /api/chat HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    sock.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await send(gh.url, { path: '/healthz' })).status).toBe(200);
  });
});
