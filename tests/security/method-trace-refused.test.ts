import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { usePolicyLayout } from '../helpers/proxy-stack.ts';

/**
 * METHOD-ALLOW (catalogue #83; OWASP REST "Restrict HTTP methods"): TRACE reflects the request (cookies and
 * injected Authorization included) back to the caller, so it is never forwarded: 405 method_not_allowed.
 */
describe('TRACE, TRACK and CONNECT on /api', () => {
  const layout = usePolicyLayout();

  it('TRACE /api/public/x → 405 method_not_allowed, no backend called', async () => {
    const before = layout.received();
    expectError(await send(layout.gh.url, { method: 'TRACE', path: '/api/public/x' }), 405, 'method_not_allowed');
    expectError(
      await send(layout.gh.url, { method: 'TRACE', path: '/api/admin/x', headers: ['Cookie', 'a=b'] }),
      405,
      'method_not_allowed',
    );
    expect(layout.received()).toBe(before);
  });

  it("TRACK (unknown to Node's parser) is refused with 400 and never forwarded", async () => {
    const before = layout.received();
    const res = await sendRaw(layout.gh.url, `TRACK /api/public/x HTTP/1.1\r\nHost: ${new URL(layout.gh.url).host}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(layout.received()).toBe(before);
  });

  it('CONNECT is answered 405 method_not_allowed with Allow, on /api, elsewhere and in authority form, and never tunnelled', async () => {
    const before = layout.received();
    const host = new URL(layout.gh.url).host;
    const requests = [
      `CONNECT /api/public/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      `CONNECT /auth/login HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      'CONNECT backend.internal:443 HTTP/1.1\r\nHost: backend.internal:443\r\n\r\n',
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nX-Request-Id: connect-1\r\n\r\n',
    ];
    for (const bytes of requests) {
      const res = await sendRaw(layout.gh.url, bytes);
      expectError(res, 405, 'method_not_allowed', bytes.split('\r\n', 1)[0]);
      expect(res.head).toMatch(/\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS(\r\n|$)/);
      expect(res.head).toMatch(/\r\nConnection: close\r\n/);
    }
    expect(layout.received()).toBe(before);
    expect(layout.gh.logs.some((l) => l['reqId'] === 'connect-1' && l['status'] === 405 && l['code'] === 'method_not_allowed')).toBe(true);
  });
});
