import { describe, expect, it } from 'vitest';
import { sendRaw, startBackend, startWsBackend } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * Two Host lines (RFC 9112 §3.2: MUST answer 400). Node keeps the first one, so a router reading one and a
 * backend reading the other could disagree; Gatehouse refuses with 400 invalid_host, for HTTP and upgrades.
 */
describe('duplicate Host header', () => {
  const proxy = useBareProxy({
    backends: { admin: startBackend, ws: startWsBackend },
    routes: (pub, { admin, ws }) => [
      { frontendHost: 'public.example.com', backend: pub, auth: 'none' },
      { frontendHost: 'admin.example.com', backend: admin.url, auth: 'none' },
      { frontendHost: 'ws.example.com', backend: ws.url, auth: 'none' },
    ],
  });

  it.each([
    ['public.example.com', 'admin.example.com'],
    ['public.example.com', 'public.example.com'],
    ['admin.example.com', 'PUBLIC.example.com'],
  ])('Host: %s + Host: %s → 400 invalid_host, no backend called', async (first, second) => {
    const before = proxy.backend.requests.length + proxy.backends.admin.requests.length;
    const res = await sendRaw(proxy.url, `GET /api/x HTTP/1.1\r\nHost: ${first}\r\nHost: ${second}\r\nConnection: close\r\n\r\n`);
    expectError(res, 400, 'invalid_host');
    expect(proxy.backend.requests.length + proxy.backends.admin.requests.length).toBe(before);
  });

  it('on a WebSocket upgrade too: 400 invalid_host, no backend connection', async () => {
    const connections = proxy.backends.ws.connections;
    const res = await sendRaw(
      proxy.url,
      'GET /api/chat HTTP/1.1\r\nHost: ws.example.com\r\nHost: admin.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expectError(res, 400, 'invalid_host');
    expect(proxy.backends.ws.connections).toBe(connections);
  });
});
