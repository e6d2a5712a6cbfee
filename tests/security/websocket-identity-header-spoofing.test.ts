import { beforeAll, describe, expect, it } from 'vitest';
import { openWs, startWsBackend } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * WS-HDR-SPOOF (catalogue #97; http-proxy-middleware's separate `proxyReqWs`): header hygiene placed only on
 * the HTTP path misses upgrades. The upgrade request is stripped and injected exactly like HTTP.
 */
describe('identity headers on the WebSocket upgrade request', () => {
  const stack = useProxyStack({ backend: startWsBackend });
  let token: string;
  beforeAll(async () => {
    token = await stack.accessToken();
  });

  it('client x-user-*, underscore variants, Authorization and Connection-named headers do not survive', async () => {
    const before = stack.backend.upgrades.length;
    const out = await openWs(`${stack.url.replace('http:', 'ws:')}/api/ws`, {
      headers: {
        cookie: `${stack.sessionCookie}; theme=dark; __Host-gh_login=x`,
        'x-user-email': 'ceo@corp.example',
        x_user_email: 'ceo@corp.example',
        'x-user-id': 'admin',
        'x-user-sub': 'admin',
        authorization: 'Bearer forged',
        'x-forwarded-for': '10.0.0.1',
        'x-http-method-override': 'DELETE',
        connection: 'Upgrade, X-User-Id, Authorization, X-User-Email',
      },
    });
    expect(out.ok).toBe(true);
    if (out.ok) out.ws.close();
    const up = stack.backend.upgrades[before];
    expect(up?.headers.get('authorization')).toEqual([`Bearer ${token}`]);
    expect(up?.headers.get('x-user-sub')).toEqual(['alice']);
    expect(up?.headers.get('x-user-email')).toEqual(['alice@example.test']);
    expect(up?.headers.get('x-user-name')).toEqual(['Alice']);
    expect(up?.headers.has('x-user-id')).toBe(false);
    expect(up?.headers.has('x_user_email')).toBe(false);
    expect(up?.headers.has('x-http-method-override')).toBe(false);
    expect(up?.headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(up?.headers.get('cookie')).toEqual(['theme=dark']);
    expect(JSON.stringify([...(up?.headers ?? new Map()).entries()])).not.toContain(stack.sessionValue);
    expect(up?.headers.get('upgrade')).toEqual(['websocket']);
  });
});
