import { describe, expect, it } from 'vitest';
import { openWs, startWsBackend } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * WS-CSWSH (catalogue #95; OWASP WebSocket "Origin Header Validation", CWE-1385): a page on another site opens
 * a WebSocket with the victim's cookie. Without SameSite help, only the Origin check stops it: 403
 * origin_not_allowed before Gatehouse connects to any backend.
 */
describe('cross-site WebSocket hijacking', () => {
  const stack = useProxyStack({ backend: startWsBackend, config: 'allowedOrigins: ["https://spa.example.com"]\n' });

  const wsUrl = () => `${stack.url.replace('http:', 'ws:')}/api/ws`;

  it.each([
    'https://evil.example',
    'null',
    'https://spa.example.com.evil.example',
    'https://evil-spa.example.com',
    'http://spa.example.com',
    'https://spa.example.com:8443',
    'file://',
  ])("Origin %s with the victim's cookie → 403 origin_not_allowed, socket closed, no backend connect", async (origin) => {
    const connections = stack.backend.connections;
    const out = await openWs(wsUrl(), { origin, headers: { cookie: stack.sessionCookie } });
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expectError(out, 403, 'origin_not_allowed');
    expect(out.headers['connection']).toBe('close');
    expect(stack.backend.connections).toBe(connections);
  });

  it.each([() => stack.url, () => 'https://spa.example.com', () => 'HTTPS://SPA.EXAMPLE.COM'])(
    "the app's own and allowed origins connect (%#)",
    async (origin) => {
      const out = await openWs(wsUrl(), { origin: origin(), headers: { cookie: stack.sessionCookie } });
      expect(out.ok).toBe(true);
      if (out.ok) out.ws.close();
    },
  );
});

describe("cross-site WebSocket hijacking: a mapping's own cors.origins", () => {
  const stack = useProxyStack({
    backend: startWsBackend,
    config: 'allowedOrigins: ["https://spa.example.com"]\n',
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/partner', backend: url, cors: { origins: ['https://partner.example.com'] } },
      { frontendHost: '*', backend: url },
    ],
  });
  const wsUrl = (path: string) => `${stack.url.replace('http:', 'ws:')}/api${path}`;

  it.each([
    ['/partner/ws', 'https://spa.example.com'],
    ['/ws', 'https://partner.example.com'],
  ])('%s from %s (allowed elsewhere, not here) → 403 origin_not_allowed, no backend connect', async (path, origin) => {
    const connections = stack.backend.connections;
    const out = await openWs(wsUrl(path), { origin, headers: { cookie: stack.sessionCookie } });
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expectError(out, 403, 'origin_not_allowed');
    expect(stack.backend.connections).toBe(connections);
  });

  it("the mapping's own origin, and Gatehouse's, connect there", async () => {
    for (const origin of ['https://partner.example.com', stack.url]) {
      const out = await openWs(wsUrl('/partner/ws'), { origin, headers: { cookie: stack.sessionCookie } });
      expect(out.ok, origin).toBe(true);
      if (out.ok) out.ws.close();
    }
  });
});
