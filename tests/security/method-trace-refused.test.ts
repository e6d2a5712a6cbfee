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

  it('CONNECT is never tunnelled to a backend', async () => {
    const before = layout.received();
    const res = await sendRaw(layout.gh.url, `CONNECT /api/public/x HTTP/1.1\r\nHost: ${new URL(layout.gh.url).host}\r\n\r\n`);
    expect(res.status === 0 || (res.status >= 400 && res.status < 500), res.raw).toBe(true);
    const authority = await sendRaw(layout.gh.url, 'CONNECT backend.internal:443 HTTP/1.1\r\nHost: backend.internal:443\r\n\r\n');
    expect(authority.status === 0 || (authority.status >= 400 && authority.status < 500), authority.raw).toBe(true);
    expect(layout.received()).toBe(before);
  });
});
