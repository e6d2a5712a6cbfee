import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * SMUGGLE-CONN-CL (catalogue #134; RFC 9110 §7.6.1, RFC 9112 §6.3; Apache CVE-2022-31813): a Connection header
 * naming Content-Length (or Transfer-Encoding, or Host) asks the proxy to drop the line that frames or routes the
 * message. Gatehouse used to drop Content-Length and still write the body raw on the kept-alive upstream
 * connection, where the backend read it as a second request with identity headers of the attacker's choosing.
 * Such a request is refused with 400 and its connection closed, on a route that needs no login.
 */
describe('Connection naming a framing or routing header', () => {
  const proxy = useBareProxy();

  const smuggled = 'GET /smuggled-admin HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nContent-Length: 0\r\n\r\n';

  it.each(['close, content-length', 'Content-Length', 'keep-alive,CONTENT-LENGTH', 'transfer-encoding', 'host', 'x-a, Host, close'])(
    'Connection: %s → 400 bad_request, connection closed, nothing reaches the backend',
    async (connection) => {
      const before = proxy.backend.requests.length;
      const res = await sendRaw(
        proxy.url,
        `POST /api/upload HTTP/1.1\r\nHost: ${proxy.host}\r\nConnection: ${connection}\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      );
      expectError(res, 400, 'bad_request', res.raw.slice(0, 300));
      expect(res.head).toMatch(/\r\nconnection: close/i);
      await new Promise((r) => setTimeout(r, 50));
      expect(proxy.backend.requests.length).toBe(before);
      // And the pooled connection still serves the next request as itself.
      const next = await send(proxy.url, { path: '/api/after' });
      expect(next.status).toBe(200);
      expect(proxy.backend.requests.slice(before).map((r) => r.url)).toEqual(['/after']);
    },
  );

  it('a chunked body under Connection: transfer-encoding is refused too', async () => {
    const before = proxy.backend.requests.length;
    const res = await sendRaw(
      proxy.url,
      `POST /api/upload HTTP/1.1\r\nHost: ${proxy.host}\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
    );
    expectError(res, 400, 'bad_request');
    await new Promise((r) => setTimeout(r, 50));
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('the body reaches the backend framed by Gatehouse, with exactly the bytes the client sent', async () => {
    const body = 'x'.repeat(100);
    const res = await send(proxy.url, {
      method: 'POST',
      path: '/api/upload',
      headers: ['Connection', 'keep-alive, x-drop-me', 'X-Drop-Me', '1'],
      body,
    });
    expect(res.status).toBe(200);
    const rec = proxy.backend.last();
    expect(rec.bodySize).toBe(100);
    expect(rec.headers.get('content-length')).toEqual(['100']);
    expect(rec.headers.has('x-drop-me')).toBe(false);
  });

  it("a Connection token naming what Gatehouse sets itself is ignored (Gatehouse adds its own after the client's are gone)", async () => {
    const res = await send(proxy.url, { path: '/api/x', headers: ['Connection', 'x-forwarded-for, x-request-id'] });
    expect(res.status).toBe(200);
    expect(proxy.backend.last().headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(proxy.backend.last().headers.get('x-request-id')?.length).toBe(1);
  });

  it('a WebSocket upgrade whose Connection names content-length is refused the same way', async () => {
    const res = await sendRaw(
      proxy.url,
      `GET /api/ws HTTP/1.1\r\nHost: ${proxy.host}\r\nConnection: Upgrade, content-length\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expectError(res, 400, 'bad_request');
  });
});
