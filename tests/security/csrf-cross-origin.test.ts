import { describe, expect, it } from 'vitest';
import { apiCall } from '../helpers/edge.ts';
import { expectError, expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const ALLOWED = 'https://spa.example.com';
const UNSAFE = ['POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * CSRF-ORIGIN (catalogue #61; OWASP CSRF "Verifying Origin with standard headers"): a page on another origin makes
 * the victim's browser send an unsafe request with the session cookie. The whole origin is compared exactly, so a
 * foreign origin, `null`, a suffix spoof, a scheme downgrade or another port get 403 csrf and the backend sees nothing.
 * Without Origin, Referer's origin is checked the same way.
 */
describe('CSRF: cross-origin unsafe requests with the session cookie', () => {
  const stack = useProxyStack({ config: `allowedOrigins: ["${ALLOWED}"]\n` });
  const reached = () => stack.backend.requests.length;

  it.each([
    'https://evil.example',
    'null',
    'https://spa.example.com.evil.example',
    'http://spa.example.com',
    'https://spa.example.com:8443',
    'https://evil-spa.example.com',
  ])('Origin %s → 403 csrf for every unsafe method, nothing forwarded', async (origin) => {
    for (const method of UNSAFE)
      await expectErrorUnforwarded(
        reached,
        () => apiCall(stack.url, { method, cookie: stack.sessionCookie, headers: ['Origin', origin] }),
        403,
        'csrf',
        method,
      );
  });

  it("Gatehouse's own origin as a scheme downgrade (https) or another port → 403 csrf", async () => {
    const own = new URL(stack.url);
    for (const origin of [`https://${own.host}`, `http://${own.hostname}:1`])
      await expectErrorUnforwarded(
        reached,
        () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Origin', origin] }),
        403,
        'csrf',
        origin,
      );
  });

  it('two Origin headers, one of them allowed → 403 csrf', async () => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Origin', ALLOWED, 'Origin', 'https://evil.example'] }),
      403,
      'csrf',
    );
  });

  it("Gatehouse's own origin and an allowed origin (any case) are forwarded", async () => {
    for (const origin of [stack.url, ALLOWED, ALLOWED.toUpperCase()]) {
      const res = await apiCall(stack.url, { method: 'DELETE', cookie: stack.sessionCookie, headers: ['Origin', origin] });
      expect(res.status, origin).toBe(200);
      expect(stack.backend.last().method).toBe('DELETE');
    }
  });

  it('without Origin, a foreign Referer → 403 csrf; an unparseable one too', async () => {
    for (const referer of ['https://evil.example/page', 'https://spa.example.com.evil.example/', 'not a url', 'about:blank'])
      await expectErrorUnforwarded(
        reached,
        () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Referer', referer] }),
        403,
        'csrf',
        referer,
      );
  });

  it("without Origin, a Referer on Gatehouse's own or an allowed origin is forwarded", async () => {
    for (const referer of [`${stack.url}/orders/42?tab=1`, `${ALLOWED}/checkout`]) {
      const res = await apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Referer', referer] });
      expect(res.status, referer).toBe(200);
    }
  });

  it('Origin wins over Referer: a foreign Origin with an own Referer → 403 csrf', async () => {
    const res = await apiCall(stack.url, {
      cookie: stack.sessionCookie,
      headers: ['Origin', 'https://evil.example', 'Referer', `${stack.url}/`],
    });
    expectError(res, 403, 'csrf');
  });

  it('safe methods are not checked: a GET from a foreign origin is forwarded (the browser keeps its answer from the page)', async () => {
    const res = await apiCall(stack.url, { method: 'GET', cookie: stack.sessionCookie, headers: ['Origin', 'https://evil.example'] });
    expect(res.status).toBe(200);
  });
});
