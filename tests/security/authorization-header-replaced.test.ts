import { beforeAll, describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * HDR-AUTHZ (catalogue #90; BBA §6.1.1): on a session request the backend gets the session's access token,
 * never the client's Authorization (a forged or another user's token, Basic credentials). On a request without
 * a Gatehouse identity it is removed, unless the mapping passes it through explicitly (passAuthorization).
 */
describe('client Authorization', () => {
  const stack = useProxyStack({
    routes: (url) => [
      { frontendHost: '*', backend: url },
      { frontendHost: '*', pathPrefix: '/optional', backend: url, auth: 'optional' },
      { frontendHost: '*', pathPrefix: '/notoken', backend: url, forwardAccessToken: false },
      { frontendHost: '*', pathPrefix: '/public', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/partner', backend: url, auth: 'none', passAuthorization: true },
    ],
  });
  let token: string;
  beforeAll(async () => {
    token = await stack.accessToken();
  });

  it.each([
    [['Authorization', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.']],
    [['Authorization', 'Basic YWRtaW46YWRtaW4=']],
    [['Authorization', 'Bearer other-user-token', 'Authorization', 'Bearer second']],
    [['authorization', 'Bearer lower-case']],
  ])('is replaced by the session token: %j', async (headers) => {
    for (const path of ['/api/x', '/api/optional/x']) {
      const res = await send(stack.url, { path, headers: ['Cookie', stack.sessionCookie, ...headers] });
      expect(res.status).toBe(200);
      expect(stack.backend.last().headers.get('authorization'), path).toEqual([`Bearer ${token}`]);
    }
  });

  it('is dropped, not passed on, where the mapping sends no token', async () => {
    await send(stack.url, { path: '/api/notoken/x', headers: ['Cookie', stack.sessionCookie, 'Authorization', 'Bearer forged'] });
    expect(stack.backend.last().headers.has('authorization')).toBe(false);
  });

  it.each(['/api/public/x', '/api/optional/x'])('without a session it is removed on %s (auth none / optional)', async (path) => {
    for (const value of ['Bearer forged', 'Basic YWRtaW46YWRtaW4=']) {
      const res = await send(stack.url, { path, headers: ['Authorization', value] });
      expect(res.status).toBe(200);
      expect(stack.backend.last().headers.has('authorization'), `${path} ${value}`).toBe(false);
    }
  });

  it('without a session it passes where the mapping asks for it (passAuthorization), and never replaces the session token', async () => {
    const res = await send(stack.url, { path: '/api/partner/x', headers: ['Authorization', 'ApiKey partner-123'] });
    expect(res.status).toBe(200);
    expect(stack.backend.last().headers.get('authorization')).toEqual(['ApiKey partner-123']);
    // auth: none never looks the session up: with a cookie too, the client's header is what passes, not a token.
    await send(stack.url, { path: '/api/partner/x', headers: ['Cookie', stack.sessionCookie, 'Authorization', 'ApiKey partner-123'] });
    expect(stack.backend.last().headers.get('authorization')).toEqual(['ApiKey partner-123']);
  });

  it('without a session, a forged bearer token on a required mapping is 401 unauthorized and never forwarded', async () => {
    const before = stack.backend.requests.length;
    expectError(await send(stack.url, { path: '/api/x', headers: ['Authorization', 'Bearer forged'] }), 401, 'unauthorized');
    expect(stack.backend.requests.length).toBe(before);
  });
});
