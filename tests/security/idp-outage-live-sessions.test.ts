import { beforeAll, describe, expect, it } from 'vitest';
import { openWs, send, startWsBackend } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * DOS-IDP (catalogue #133; BBA §6.1.2.2): with the IdP down, sessions whose access token is still valid keep
 * working on /api, HTTP and WebSocket alike, without waiting on the IdP: the hot path never calls it.
 */
describe('IdP outage and live sessions', () => {
  const stack = useProxyStack({
    backends: { ws: startWsBackend },
    routes: (url, { ws }) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/ws', backend: ws.url },
    ],
  });
  beforeAll(async () => {
    await stack.idp.stop();
  });

  it('an existing session is proxied promptly with its token', async () => {
    const token = await stack.accessToken();
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const res = await send(stack.url, { path: `/api/x${i}`, headers: ['Cookie', stack.sessionCookie] });
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(stack.backend.last().headers.get('authorization')).toEqual([`Bearer ${token}`]);
    }
  });

  it('an existing session still opens a WebSocket', async () => {
    const out = await openWs(`${stack.url.replace('http:', 'ws:')}/api/ws/chat`, { headers: { cookie: stack.sessionCookie } });
    expect(out.ok).toBe(true);
    if (out.ok) out.ws.close();
  });
});
