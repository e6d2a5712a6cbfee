import { describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backends.ts';
import { apiCall, expectCorsFor, expectNoCors, varyOf } from '../helpers/edge.ts';
import { expectError, expectErrorUnforwarded } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

const ALLOWED = 'https://spa.example.com';
const HOSTILE = [
  'https://evil.example',
  'null',
  'https://spa.example.com.evil.example',
  'http://spa.example.com',
  'https://spa.example.com:8443',
];

/**
 * CORS (catalogue #64; OWASP CSRF "Custom Headers and CORS"): a preflight or an actual request from an origin that
 * is not configured gets no Access-Control-* header at all: never `*` with credentials, never the request's Origin
 * reflected, never `null`. The backend's own CORS headers never reach the client (it might reflect anything).
 */
describe('CORS never reflects an origin that is not configured', () => {
  const stack = useProxyStack({
    config: `allowedOrigins: ["${ALLOWED}"]\n`,
    // A backend that answers like a careless CORS middleware: any origin reflected, credentials allowed.
    backend: () =>
      startBackend((req, res) => {
        res.setHeader('access-control-allow-origin', req.headers.origin ?? '*');
        res.setHeader('access-control-allow-credentials', 'true');
        res.setHeader('access-control-allow-methods', '*');
        return false;
      }),
  });
  const reached = () => stack.backend.requests.length;

  it.each(HOSTILE)('preflight from %s → 403 origin_not_allowed, no CORS header, never forwarded', async (origin) => {
    const res = await expectPreflightRefused(origin);
    expectNoCors(res);
    expect(varyOf(res)).toContain('origin');
  });

  it.each(HOSTILE)("actual GET from %s with the cookie: the backend's answer, without any CORS header", async (origin) => {
    const res = await apiCall(stack.url, { method: 'GET', cookie: stack.sessionCookie, headers: ['Origin', origin] });
    expect(res.status).toBe(200);
    expectNoCors(res);
    expect(varyOf(res)).toContain('origin');
  });

  it("the allowed origin gets Gatehouse's headers, never the backend's", async () => {
    const res = await apiCall(stack.url, { method: 'GET', cookie: stack.sessionCookie, headers: ['Origin', ALLOWED] });
    expect(res.status).toBe(200);
    expectCorsFor(res, ALLOWED);
    expect(res.rawHeaders.filter((h) => h.toLowerCase() === 'access-control-allow-origin')).toHaveLength(1);
    expect(res.headers['access-control-allow-methods']).toBeUndefined();
  });

  async function expectPreflightRefused(origin: string) {
    let answer: Awaited<ReturnType<typeof apiCall>> | undefined;
    await expectErrorUnforwarded(
      reached,
      async () =>
        (answer = await apiCall(stack.url, { method: 'OPTIONS', headers: ['Origin', origin, 'Access-Control-Request-Method', 'DELETE'] })),
      403,
      'origin_not_allowed',
    );
    if (!answer) throw new Error('no answer');
    expectError(answer, 403, 'origin_not_allowed');
    return answer;
  }
});
