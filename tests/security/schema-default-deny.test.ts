import { describe, expect, it } from 'vitest';
import { openWs, send, startWsBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * security-cases 113 (SCH-DEFAULT-DENY): on a mapping with `strictSchemas: true`, a method or path no `schemas` entry
 * declares (PATCH where only POST is registered) is refused, never forwarded unvalidated: 405 with Allow when the
 * path is declared for other methods, else 404. WebSocket upgrades go through the same admission: the query schema of
 * a GET entry applies to them, and an undeclared upgrade path is refused too.
 */
describe('strictSchemas: only declared endpoints exist', () => {
  const proxy = useBareProxy({
    backends: { ws: startWsBackend },
    config: `schemas:
  - method: POST
    path: /orders
    body: { type: object }
  - method: GET
    path: /orders/:id
  - method: GET
    path: /live
    query: { type: object, properties: { room: { type: string, pattern: "^[a-z]+$" } }, required: [room], additionalProperties: false }
`,
    routes: (pub, { ws }) => [
      { frontendHost: 'ws.example', backend: ws.url, auth: 'none', strictSchemas: true },
      { frontendHost: '*', backend: pub, auth: 'none', strictSchemas: true },
    ],
  });
  const json = ['Content-Type', 'application/json'];

  it.each([
    ['PATCH', '/api/orders', 405, 'method_not_allowed', 'POST'],
    ['PUT', '/api/orders', 405, 'method_not_allowed', 'POST'],
    ['DELETE', '/api/orders/7', 405, 'method_not_allowed', 'GET, HEAD'],
    ['GET', '/api/orders/7/items', 404, 'not_found', undefined],
    ['POST', '/api/refunds', 404, 'not_found', undefined],
  ])('%s %s → %d %s', async (method, path, status, code, allow) => {
    const res = await send(proxy.url, { method, path, headers: json, body: '{}' });
    expectError(res, status, code);
    expect(res.headers['allow']).toBe(allow);
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('a declared POST cannot become an undeclared PUT or DELETE through a query `_method` (400, never forwarded)', async () => {
    // Rails, Laravel and express's method-override run `POST /orders?_method=PUT` as a PUT: an endpoint no entry declares.
    for (const path of ['/api/orders?_method=PUT', '/api/orders?%5Fmethod=DELETE', '/api/orders?x=1&_method=PATCH']) {
      const res = await send(proxy.url, { method: 'POST', path, headers: json, body: '{}' });
      expectError(res, 400, 'bad_request', path);
    }
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('declared endpoints pass, whatever their spelling', async () => {
    expect((await send(proxy.url, { method: 'POST', path: '/api/Orders/', headers: json, body: '{}' })).status).toBe(200);
    expect((await send(proxy.url, { path: '/api/orders/7' })).status).toBe(200);
    expect((await send(proxy.url, { method: 'HEAD', path: '/api/orders/7' })).status).toBe(200);
  });

  it('a WebSocket upgrade meets the GET entry: its query schema, and strictness', async () => {
    const base = `ws://${proxy.host}`;
    const headers = { Host: 'ws.example' };
    const bad = await openWs(`${base}/api/live?room=A1`, { headers });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expectError(bad, 400, 'validation_failed');
    const undeclared = await openWs(`${base}/api/chat`, { headers });
    expect(undeclared.ok).toBe(false);
    if (!undeclared.ok) expectError(undeclared, 404, 'not_found');
    expect(proxy.backends.ws.upgrades).toHaveLength(0);
    const good = await openWs(`${base}/api/live?room=lobby`, { headers });
    expect(good.ok).toBe(true);
    if (good.ok) good.ws.close();
  });
});
