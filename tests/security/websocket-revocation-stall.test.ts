import { describe, expect, it } from 'vitest';
import { clientFrame, closeCodeOf, frame, openRawWs, sleep, startRawWsBackend } from '../helpers/raw-ws.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * WS-REVOKE-STALL (issue 10): Gatehouse may only inject its close frame between two backend frames. A client
 * that asks the backend for a huge message and stops reading parks the relay mid-frame; a revoked connection
 * must still stop carrying the client's messages at once and be torn down after a short grace, and a backend
 * frame that can never end (RFC 6455 §5.2: the 64-bit length's top bit must be 0) must not hold it open either.
 */
describe('a revoked WebSocket whose relay is stalled mid-frame', () => {
  const stack = useProxyStack({ backend: startRawWsBackend });

  it('after POST /auth/logout answers 200, no client message reaches the backend and both sockets close within ~2 s', async () => {
    const cookie = await stack.loginAs('stella');
    const index = stack.backend.peers.length;
    const client = await openRawWs(stack.url, '/api/stream', { cookie, origin: stack.url });
    const server = await stack.backend.waitForPeer(index);

    client.send(clientFrame(0x1, 'send me 16 MiB'));
    await server.waitFor(() => server.texts().includes('send me 16 MiB'), 'the request');
    client.socket.pause();
    server.send(frame({ opcode: 0x2, payload: Buffer.alloc(16 << 20, 0x5a) }));
    await sleep(300);
    // The relay is parked inside that frame: the backend still holds bytes nobody reads.
    expect(server.socket.writableLength).toBeGreaterThan(0);
    client.send(clientFrame(0x1, 'before logout'));
    await server.waitFor(() => server.texts().includes('before logout'), 'a message sent before the logout');

    const res = await fetch(`${stack.url}/auth/logout`, { method: 'POST', headers: { cookie, origin: stack.url } });
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const loggedOutAt = Date.now();
    for (let i = 0; Date.now() - loggedOutAt < 1500 && client.closedAt === undefined; i++) {
      client.send(clientFrame(0x1, `after logout ${i}`));
      await sleep(50);
    }
    client.socket.resume();
    const [clientEnded, serverEnded] = await Promise.all([
      client.endsWithin(2500 - (Date.now() - loggedOutAt)),
      server.endsWithin(2500 - (Date.now() - loggedOutAt)),
    ]);

    expect(server.texts().filter((t) => t.startsWith('after logout'))).toEqual([]);
    expect(serverEnded).toBe(true);
    expect(clientEnded).toBe(true);
    expect((server.closedAt ?? Infinity) - loggedOutAt).toBeLessThan(2000);
    expect((client.closedAt ?? Infinity) - loggedOutAt).toBeLessThan(2000);
  });

  it('a backend frame whose 64-bit length has the top bit set: the client gets close 1002 at once and the backend is cut off', async () => {
    const index = stack.backend.peers.length;
    const client = await openRawWs(stack.url, '/api/stream', { cookie: stack.sessionCookie });
    const server = await stack.backend.waitForPeer(index);
    server.send(frame({ opcode: 0x1, payload: 'hello' }));
    await client.waitFor(() => client.texts().includes('hello'), 'a legal frame');

    const sentAt = Date.now();
    server.send(frame({ opcode: 0x2, declaredLength: (1n << 63n) + 5n }));
    expect(await client.endsWithin(1000)).toBe(true);
    expect(await server.endsWithin(1000)).toBe(true);
    expect((client.closedAt ?? Infinity) - sentAt).toBeLessThan(1000);
    // Nothing of the illegal frame reached the client: the text, then Gatehouse's close frame.
    const frames = client.frames();
    expect(frames.map((f) => f.opcode)).toEqual([0x1, 0x8]);
    expect(closeCodeOf(frames[1])).toBe(1002);
  });
});
