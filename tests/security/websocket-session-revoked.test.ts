import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closed, nextMessage, openWs, startWsBackend, type TestWsBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../proxy/fixture.ts';

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
    const { id, session: s } = await a.app.sessions.create({ claims: { sub }, tokens: { accessToken: `${sub}-token` }, accessTokenExpiresAt: Date.now() + 3600_000 });
    return { cookie: `__Host-gh_session=${id}`, key: s.key };
  };
  const connect = async (gh: TestGatehouse, cookie: string) => {
    const out = await openWs(`${gh.url.replace('http:', 'ws:')}/api/ws`, { headers: { cookie } });
    if (!out.ok) throw new Error(`refused: ${out.status} ${out.body}`);
    return out.ws;
  };

  it('closes the session\'s sockets on both replicas with 1008 and leaves others open', async () => {
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
});
