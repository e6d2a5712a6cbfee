import { describe, expect, it } from 'vitest';
import { sendRaw, startWsBackend } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-NONWS-UPGRADE (catalogue #100; RFC 9931, h2c smuggling): only WebSocket upgrades are tunnelled.
 * An h2c or unknown upgrade, or an upgrade on HTTP/1.0 or a non-GET, is 400 and never reaches a backend.
 */
describe('non-WebSocket upgrades', () => {
  const proxy = useBareProxy({ backend: startWsBackend });

  const ws = 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  it.each([
    [
      'h2c with HTTP2-Settings',
      'GET /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    ],
    ['Upgrade: foo', 'GET /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n'],
    ['Upgrade: websocket, h2c', `GET /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n${ws}\r\n`],
    ['websocket on HTTP/1.0', `GET /api/x HTTP/1.0\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${ws}\r\n`],
    [
      'websocket with POST',
      `POST /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n${ws}\r\n`,
    ],
  ])('%s → 400 bad_request, no backend connection', async (_name, raw) => {
    const connections = proxy.backend.connections;
    const res = await sendRaw(proxy.url, raw.replace('{host}', proxy.host));
    expectError(res, 400, 'bad_request', res.raw.slice(0, 200));
    expect(proxy.backend.connections).toBe(connections);
  });

  it('an Upgrade header without Connection: upgrade is plain HTTP, and the header is not forwarded', async () => {
    const connections = proxy.backend.connections;
    const res = await sendRaw(proxy.url, `GET /api/x HTTP/1.1\r\nHost: ${proxy.host}\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n`);
    // The WebSocket backend answers plain HTTP with 426; what matters is that it was not an upgrade.
    expect(res.status).toBe(426);
    expect(proxy.backend.connections).toBe(connections + 1);
    expect(proxy.backend.httpRequests).toBeGreaterThan(0);
  });
});
