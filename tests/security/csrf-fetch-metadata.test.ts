import { describe, expect, it } from 'vitest';
import { apiCall } from '../helpers/edge.ts';
import { expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const SIBLING = 'https://admin.example.com';

/**
 * CSRF-FETCHMETA (catalogue #62; OWASP CSRF "Fetch Metadata headers", policies 1.1 and 1.3): Sec-Fetch-Site is set
 * by the browser and cannot be set by a page. cross-site → 403 csrf, whatever Origin says; same-site → 403 csrf
 * unless the sibling's origin is configured as allowed.
 */
describe('CSRF: Sec-Fetch-Site on unsafe requests with the session cookie', () => {
  const stack = useProxyStack({ config: `allowedOrigins: ["${SIBLING}"]\n` });
  const reached = () => stack.backend.requests.length;

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])("%s cross-site → 403 csrf even with Gatehouse's own Origin", async (method) => {
    await expectErrorUnforwarded(
      reached,
      () => apiCall(stack.url, { method, cookie: stack.sessionCookie, headers: ['Sec-Fetch-Site', 'cross-site', 'Origin', stack.url] }),
      403,
      'csrf',
    );
  });

  it('same-site from a sibling that is not allowed → 403 csrf', async () => {
    await expectErrorUnforwarded(
      reached,
      () =>
        apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Sec-Fetch-Site', 'same-site', 'Origin', 'https://blog.example.com'] }),
      403,
      'csrf',
    );
  });

  it('same-site from the allowed sibling, and same-origin from Gatehouse itself, are forwarded', async () => {
    const sibling = await apiCall(stack.url, { cookie: stack.sessionCookie, headers: ['Sec-Fetch-Site', 'same-site', 'Origin', SIBLING] });
    expect(sibling.status).toBe(200);
    const own = await apiCall(stack.url, {
      method: 'PATCH',
      cookie: stack.sessionCookie,
      headers: ['Sec-Fetch-Site', 'same-origin', 'Origin', stack.url],
    });
    expect(own.status).toBe(200);
  });
});
