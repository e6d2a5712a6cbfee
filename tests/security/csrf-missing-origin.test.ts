import { describe, expect, it } from 'vitest';
import { apiCall } from '../helpers/edge.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * CSRF-NOHDRS (catalogue #63; OWASP CSRF: "If neither of these headers are present ... We recommend blocking"):
 * an unsafe request with the session cookie and neither Origin, Referer nor Sec-Fetch-Site is refused, 403 csrf.
 * A mapping may opt out with `csrf: { allowMissingOrigin: true }` (named after what it lets through); even then a
 * same-site request without an origin stays refused.
 */
describe('CSRF: unsafe requests with no Origin and no Referer', () => {
  const stack = useProxyStack({
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/legacy', backend: url, csrf: { allowMissingOrigin: true } },
      { frontendHost: '*', backend: url },
    ],
  });
  const reached = () => stack.backend.requests.length;

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('%s with the cookie and no origin headers → 403 csrf, nothing forwarded', async (method) => {
    await expectErrorUnforwarded(reached, () => apiCall(stack.url, { method, cookie: stack.sessionCookie }), 403, 'csrf');
  });

  it('the same with Sec-Fetch-Site: same-origin but no Origin → 403 csrf (the header alone names no origin)', async () => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Sec-Fetch-Site', 'same-origin'] }),
      403,
      'csrf',
    );
  });

  it('on the opted-out mapping it is forwarded', async () => {
    const res = await apiCall(stack.url, { path: '/api/legacy/orders', cookie: stack.sessionCookie });
    expect(res.status).toBe(200);
    expect(stack.backend.last().url).toBe('/legacy/orders');
  });

  it('the opt-out does not cover a foreign origin, nor a same-site request without an origin', async () => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { path: '/api/legacy/orders', cookie: stack.sessionCookie, headers: ['Origin', 'https://evil.example'] }),
      403,
      'csrf',
    );
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { path: '/api/legacy/orders', cookie: stack.sessionCookie, headers: ['Sec-Fetch-Site', 'same-site'] }),
      403,
      'csrf',
    );
  });
});
