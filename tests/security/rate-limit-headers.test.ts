import { describe, expect, it } from 'vitest';
import { openWs, send, startWsBackend } from '../helpers/backends.ts';
import { expectError, upgradeRefusal } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

// Security case 127 (RL-HEADERS): past the limit, HTTP requests and WebSocket upgrades alike get 429 with
// Retry-After and the IETF RateLimit fields, and the backend is not called; admitted responses carry the fields too.
describe('rate limit answers on /api (HTTP and WebSocket upgrades)', () => {
  const stack = useProxyStack({
    backends: { ws: startWsBackend },
    routes: (backendUrl, { ws }) => [
      { frontendHost: '*', pathPrefix: '/ws', backend: ws.url, rateLimit: { requests: 2, windowSeconds: 60 } },
      { frontendHost: '*', pathPrefix: '/limited', backend: backendUrl, rateLimit: { requests: 3, windowSeconds: 60 } },
      { frontendHost: '*', pathPrefix: '/open', backend: backendUrl, rateLimit: false },
      { frontendHost: '*', backend: backendUrl },
    ],
    config: 'rateLimits:\n  api: { requests: 1000, windowSeconds: 60 }\n',
  });

  it('admits up to the limit with RateLimit fields, then answers 429 with Retry-After and calls no backend', async () => {
    const get = () => send(stack.url, { path: '/api/limited/x', headers: ['Cookie', stack.sessionCookie] });
    const seen: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const res = await get();
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-policy']).toBe('"mapping-1";q=3;w=60');
      seen.push(res.headers['ratelimit'] as string | undefined);
    }
    expect(seen.map((v) => /^"mapping-1";r=(\d+);t=(\d+)$/.exec(v ?? '')?.[1])).toEqual(['2', '1', '0']);
    const before = stack.backend.requests.length;
    const refused = await get();
    expectError(refused, 429, 'too_many_requests');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.headers['ratelimit-policy']).toBe('"mapping-1";q=3;w=60');
    expect(refused.headers['ratelimit']).toBe(`"mapping-1";r=0;t=${retryAfter}`);
    expect(stack.backend.requests.length).toBe(before);
  });

  it('applies rateLimits.api to mappings without their own, and none where a mapping says false', async () => {
    const inherited = await send(stack.url, { path: '/api/other', headers: ['Cookie', stack.sessionCookie] });
    expect(inherited.status).toBe(200);
    expect(inherited.headers['ratelimit-policy']).toBe('"api";q=1000;w=60');
    const off = await send(stack.url, { path: '/api/open/x', headers: ['Cookie', stack.sessionCookie] });
    expect(off.status).toBe(200);
    expect(off.headers['ratelimit-policy']).toBeUndefined();
    expect(off.headers['ratelimit']).toBeUndefined();
  });

  it('counts WebSocket upgrades: past the limit the upgrade gets 429 and never reaches the backend', async () => {
    const ws = stack.backends.ws;
    const url = `${stack.url.replace(/^http/, 'ws')}/api/ws/chat`;
    const opened = [];
    for (let i = 0; i < 2; i++) {
      const out = await openWs(url, { headers: { cookie: stack.sessionCookie } });
      expect(out.ok).toBe(true);
      opened.push(out);
    }
    const upgradesBefore = ws.upgrades.length;
    const refusal = await upgradeRefusal(openWs(url, { headers: { cookie: stack.sessionCookie } }));
    expectError(refusal, 429, 'too_many_requests');
    expect(Number(refusal.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refusal.headers['ratelimit-policy']).toBe('"mapping-0";q=2;w=60');
    expect(ws.upgrades.length).toBe(upgradesBefore);
    for (const o of opened) if (o.ok) o.ws.terminate();
  });
});
