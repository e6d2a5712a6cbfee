import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { closed, nextMessage, openWs, startWsBackend, type TestWsBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-REVOKE (catalogue #98; OWASP WebSocket "close WebSocket connections when sessions expire"): ending a
 * session closes its open WebSockets with 1008, on every replica, while other sessions' sockets stay open.
 */
describe('WebSockets of an ended session', () => {
  let backend: TestWsBackend;
  let a: TestGatehouse;
  let b: TestGatehouse;
  beforeAll(async () => {
    backend = await startWsBackend();
    const yaml = mappingsYaml([{ frontendHost: '*', backend: backend.url }]);
    a = await startBareGatehouse(yaml, { REDIS_KEY_PREFIX: `wsrev${process.pid}:` });
    // A second replica on the same Redis prefix.
    b = await startBareGatehouse(yaml, { REDIS_KEY_PREFIX: `wsrev${process.pid}:` });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await backend?.close();
  });

  const session = async (sub: string) => {
    const { secret: id, session: s } = await a.app.sessions.create({
      claims: { sub },
      tokens: { accessToken: `${sub}-token` },
      accessTokenExpiresAt: Date.now() + 3600_000,
    });
    return { cookie: `__Host-gh_session=${id}`, key: s.storeKey };
  };
  const connect = async (gh: TestGatehouse, cookie: string) => {
    const out = await openWs(`${gh.url.replace('http:', 'ws:')}/api/ws`, { headers: { cookie } });
    if (!out.ok) throw new Error(`refused: ${out.status} ${out.body}`);
    return out.ws;
  };

  it("closes the session's sockets on both replicas with 1008 and leaves others open", async () => {
    const victim = await session('victim');
    const bystander = await session('bystander');
    const onA = await connect(a, victim.cookie);
    const onB = await connect(b, victim.cookie);
    const other = await connect(b, bystander.cookie);
    const closedA = closed(onA);
    const closedB = closed(onB);
    await a.app.sessions.destroy(victim.key);
    expect((await closedA).code).toBe(1008);
    expect((await closedB).code).toBe(1008);
    other.send('still here');
    expect((await nextMessage(other)).data.toString()).toBe('still here');
    other.close();
  });

  it('a session ended while the backend has not answered the upgrade yet: 401 unauthorized, and the backend connection is closed', async () => {
    // A backend that takes the upgrade request and never answers it.
    const held: Socket[] = [];
    const slow = createServer((s) => {
      held.push(s);
      s.on('error', () => {});
      s.resume();
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', () => resolve()));
    const gh = await startBareGatehouse(
      mappingsYaml([{ frontendHost: '*', backend: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`, timeoutMs: 10_000 }]),
      { REDIS_KEY_PREFIX: `wsrev${process.pid}:` },
    );
    try {
      const victim = await session('early');
      const pending = openWs(`${gh.url.replace('http:', 'ws:')}/api/ws`, { headers: { cookie: victim.cookie } });
      const deadline = Date.now() + 5000;
      while (held.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(held).toHaveLength(1);
      const backendClosed = new Promise((r) => held[0]?.once('close', r));
      await a.app.sessions.destroy(victim.key);
      const out = await pending;
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expectError(out, 401, 'unauthorized');
      }
      await backendClosed;
    } finally {
      await gh.close();
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => slow.close(() => resolve()));
    }
  });
});
