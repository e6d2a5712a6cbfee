import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { openWs, send, startBackend, startWsBackend, type TestBackend, type TestWsBackend } from '../helpers/backends.ts';
import { mappingsYaml, startProxyStack, type ProxyStack } from '../helpers/proxy-stack.ts';

/**
 * DOS-IDP (catalogue #133; BBA §6.1.2.2): with the IdP down, sessions whose access token is still valid keep
 * working on /api, HTTP and WebSocket alike, without waiting on the IdP: the hot path never calls it.
 */
describe('IdP outage and live sessions', () => {
  let backend: TestBackend;
  let wsBackend: TestWsBackend;
  let stack: ProxyStack;
  beforeAll(async () => {
    backend = await startBackend();
    wsBackend = await startWsBackend();
    stack = await startProxyStack({
      yaml: mappingsYaml([
        { frontendHost: '*', backend: backend.url },
        { frontendHost: '*', pathPrefix: '/ws', backend: wsBackend.url },
      ]),
    });
    await stack.idp.stop();
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([backend?.close(), wsBackend?.close()]);
  });

  it('an existing session is proxied promptly with its token', async () => {
    const token = (await stack.gh.app.sessions.load(parseSessionSecret(stack.sessionValue)))?.tokens.accessToken;
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const res = await send(stack.url, { path: `/api/x${i}`, headers: ['Cookie', stack.sessionCookie] });
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(backend.last().headers.get('authorization')).toEqual([`Bearer ${token}`]);
    }
  });

  it('an existing session still opens a WebSocket', async () => {
    const out = await openWs(`${stack.url.replace('http:', 'ws:')}/api/ws/chat`, { headers: { cookie: stack.sessionCookie } });
    expect(out.ok).toBe(true);
    if (out.ok) out.ws.close();
  });
});
