import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JWTPayload } from 'jose';
import { header, openWs, send, startBackend, startWsBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError, expectErrorUnforwarded, upgradeRefusal } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { makeSigningKey, nowSeconds, sessionCookieOf, signJwt, type SigningKey } from '../helpers/token-kit.ts';

const API_AUDIENCE = 'https://api.rules.test';

/**
 * Route rules (issue 16) with real requests: a real IdP whose users carry groups and email claims, bearer
 * tokens signed with the IdP's key, a recording backend and a WebSocket backend. Each rule outcome is checked
 * by status and error code, and by whether the backend saw the request.
 */
describe('route rules', () => {
  let key: SigningKey;
  beforeAll(async () => {
    key = await makeSigningKey('RS256');
  });
  const stage = useStage(() => ({
    idp: {
      jwtAccessTokenAudience: API_AUDIENCE,
      jwks: { keys: [key.privateJwk] },
      accounts: {
        alice: { groups: ['staff'] },
        root: { email: 'root@Example.com', groups: ['admin', 'ops'] },
        mallory: { email: 'mallory@example.com', email_verified: false, groups: ['admin'] },
      },
    },
    backends: { backend: startBackend, wsBackend: startWsBackend },
    yaml: ({ backend, wsBackend }) =>
      mappingsYaml([
        {
          frontendHost: '*',
          pathPrefix: '/ws',
          backend: wsBackend.url,
          rules: [
            { match: { path: '/ws/admin/*' }, requireClaims: { groups: 'admin' } },
            { match: { path: '/ws/feed' }, methods: ['POST'] },
          ],
        },
        {
          frontendHost: '*',
          pathPrefix: '/open',
          backend: backend.url,
          auth: 'none',
          rules: [{ match: { path: '/open/private/*' }, auth: 'required' }],
        },
        {
          frontendHost: '*',
          backend: backend.url,
          rules: [
            { match: { path: '/public/*' }, auth: 'none' },
            { match: { path: '/maybe' }, auth: 'optional' },
            { match: { path: '/admin/*', methods: ['POST', 'DELETE'] }, requireClaims: { groups: ['admin'] } },
            { match: { path: '/admin/*' }, methods: ['GET'] },
            { match: { path: '/corp/*' }, emailDomains: ['example.com'] },
            { match: { path: '/multi' }, requireClaims: { groups: ['ops', 'billing'], tier: 2 } },
            { match: { path: '/scoped' }, requireClaims: { scope: 'orders:write' } },
            { match: { path: '/maybe-admin' }, auth: 'optional', requireClaims: { groups: 'admin' } },
          ],
        },
      ]),
    gatehouse: { env: { API_AUDIENCE, API_TOKEN_ALGORITHMS: 'RS256' } },
  }));

  const cookies = new Map<string, string>();
  beforeAll(async () => {
    for (const user of ['alice', 'root', 'mallory']) {
      const browser = new Browser();
      await browser.login(stage.gh.url, user);
      cookies.set(user, sessionCookieOf(browser, stage.gh).header);
    }
  });
  const as = (user: string) => ['Cookie', cookies.get(user) as string];
  const bearer = async (claims: Record<string, unknown>) => {
    const iat = nowSeconds();
    const payload: JWTPayload = { iss: stage.idp.issuer, aud: API_AUDIENCE, sub: 'svc', iat, exp: iat + 120, jti: randomUUID(), ...claims };
    return ['Authorization', `Bearer ${await signJwt(key, payload, { typ: 'at+jwt' })}`];
  };
  const backend = () => stage.backends.backend;
  const reached = () => backend().requests.length;
  const call = (method: string, path: string, headers: string[] = []) =>
    send(stage.gh.url, { method, path, headers, ...(method === 'POST' || method === 'PUT' ? { body: '{}' } : {}) });
  const expectForwarded = async (method: string, path: string, headers: string[] = []) => {
    const before = reached();
    const res = await call(method, path, headers);
    expect(res.status, `${method} ${path}`).toBe(200);
    expect(reached(), `${method} ${path} reached the backend`).toBe(before + 1);
    return backend().last();
  };
  const expectRefused = (method: string, path: string, headers: string[], status: number, code: string) =>
    expectErrorUnforwarded(reached, () => call(method, path, headers), status, code, `${method} ${path}`);

  describe('auth override', () => {
    it('auth: none in an auth: required mapping forwards anonymously, and forged identity headers never pass', async () => {
      const rec = await expectForwarded('GET', '/api/public/prices', [
        'X-User-Email',
        'ceo@corp',
        'X-User-Sub',
        'root',
        'X_User_Sub',
        'root',
      ]);
      expect([...rec.headers.keys()].filter((h) => h.startsWith('x-user') || h.startsWith('x_user'))).toEqual([]);
      // A session is not even looked up there: the cookie never turns into identity headers or a token.
      const withSession = await expectForwarded('GET', '/api/public/prices', as('root'));
      expect([...withSession.headers.keys()].filter((h) => h.startsWith('x-user') || h === 'authorization')).toEqual([]);
    });

    it('auth: required in an auth: none mapping demands a session or token there, and only there', async () => {
      await expectRefused('GET', '/api/open/private/x', [], 401, 'unauthorized');
      const rec = await expectForwarded('GET', '/api/open/private/x', as('alice'));
      expect(header(rec, 'x-user-sub')).toBe('alice');
      await expectForwarded('GET', '/api/open/elsewhere');
    });

    it('auth: optional forwards anonymous callers and identifies the others', async () => {
      const anonymous = await expectForwarded('GET', '/api/maybe');
      expect(anonymous.headers.has('x-user-sub')).toBe(false);
      expect(header(await expectForwarded('GET', '/api/maybe', as('alice')), 'x-user-sub')).toBe('alice');
    });

    it("a request no rule matches gets the mapping's own settings (auth: required)", async () => {
      await expectRefused('GET', '/api/orders/1', [], 401, 'unauthorized');
      await expectForwarded('GET', '/api/orders/1', as('alice'));
    });
  });

  describe('method allowlist', () => {
    it('a method outside it is 405 method_not_allowed with Allow, before identity', async () => {
      for (const headers of [as('root'), []]) {
        const before = reached();
        const res = await call('PUT', '/api/admin/users/1', headers);
        expectError(res, 405, 'method_not_allowed');
        expect(res.headers['allow']).toBe('GET, HEAD');
        expect(reached()).toBe(before);
      }
      await expectForwarded('GET', '/api/admin/users/1', as('alice'));
      await expectForwarded('HEAD', '/api/admin/users/1', as('alice'));
    });

    it('first match wins: POST meets the claims rule, never the GET-only rule below it', async () => {
      await expectForwarded('POST', '/api/admin/users', as('root'));
      await expectRefused('POST', '/api/admin/users', as('alice'), 403, 'forbidden');
    });
  });

  describe('requireClaims', () => {
    it('an array claim matches by membership (session): unmet is 403 forbidden and the backend is not called', async () => {
      await expectForwarded('DELETE', '/api/admin/users/7', as('root'));
      await expectRefused('DELETE', '/api/admin/users/7', as('alice'), 403, 'forbidden');
    });

    it('bearer tokens carry claims too: an array or a scalar claim equal to the value passes, others are 403', async () => {
      await expectForwarded('DELETE', '/api/admin/x', await bearer({ groups: ['ops', 'admin'] }));
      await expectForwarded('DELETE', '/api/admin/x', await bearer({ groups: 'admin' }));
      await expectRefused('DELETE', '/api/admin/x', await bearer({ groups: ['administrators'] }), 403, 'forbidden');
      await expectRefused('DELETE', '/api/admin/x', await bearer({ groups: 'admin,ops' }), 403, 'forbidden');
      await expectRefused('DELETE', '/api/admin/x', await bearer({}), 403, 'forbidden');
    });

    it('a list of values means any of them; every claim named must match, with its type', async () => {
      await expectForwarded('GET', '/api/multi', await bearer({ groups: ['billing'], tier: 2 }));
      await expectForwarded('GET', '/api/multi', await bearer({ groups: 'ops', tier: 2 }));
      await expectRefused('GET', '/api/multi', await bearer({ groups: ['billing'], tier: '2' }), 403, 'forbidden');
      await expectRefused('GET', '/api/multi', await bearer({ groups: ['billing'] }), 403, 'forbidden');
      await expectRefused('GET', '/api/multi', as('root'), 403, 'forbidden');
    });

    it('the scope claim is a space-separated list', async () => {
      await expectForwarded('GET', '/api/scoped', await bearer({ scope: 'orders:read orders:write' }));
      await expectRefused('GET', '/api/scoped', await bearer({ scope: 'orders:read' }), 403, 'forbidden');
      await expectRefused('GET', '/api/scoped', await bearer({ scope: 'orders:writer' }), 403, 'forbidden');
    });

    it('under auth: optional an anonymous caller is 401 (logging in could help), a caller without the claim 403', async () => {
      await expectRefused('GET', '/api/maybe-admin', [], 401, 'unauthorized');
      await expectRefused('GET', '/api/maybe-admin', as('alice'), 403, 'forbidden');
      await expectForwarded('GET', '/api/maybe-admin', as('root'));
    });
  });

  describe('emailDomains', () => {
    it('needs a verified address in the domain, compared case-insensitively', async () => {
      await expectForwarded('GET', '/api/corp/wiki', as('root'));
      await expectRefused('GET', '/api/corp/wiki', as('alice'), 403, 'forbidden');
      // mallory's example.com address is not verified at the IdP: it could be anyone's.
      await expectRefused('GET', '/api/corp/wiki', as('mallory'), 403, 'forbidden');
      await expectForwarded('GET', '/api/corp/wiki', await bearer({ email: 'Svc@EXAMPLE.COM', email_verified: true }));
      await expectRefused('GET', '/api/corp/wiki', await bearer({ email: 'svc@sub.example.com', email_verified: true }), 403, 'forbidden');
      await expectRefused('GET', '/api/corp/wiki', await bearer({ email: 'svc@example.com', email_verified: 'true' }), 403, 'forbidden');
    });
  });

  describe('path spellings routing treats alike meet the same rule', () => {
    it.each(['/api/admin/x', '/api/Admin/x', '/api/ADMIN/X/', '/api/admin/x/', '/api/admin', '/api/admin/'])('%s', async (path) => {
      await expectRefused('POST', path, as('alice'), 403, 'forbidden');
      await expectRefused('PUT', path, as('root'), 405, 'method_not_allowed');
    });

    it('/api/Public/x/ is the public rule too', async () => {
      await expectForwarded('GET', '/api/Public/prices/');
    });
  });

  describe('WebSocket upgrades go through the same rules', () => {
    const wsUrl = (path: string) => `${stage.gh.url.replace('http', 'ws')}/api${path}`;

    it('an upgrade the claims rule refuses is 403 and never reaches the backend', async () => {
      const before = stage.backends.wsBackend.upgrades.length;
      const refusal = await upgradeRefusal(openWs(wsUrl('/ws/admin/live'), { headers: { cookie: cookies.get('alice') as string } }));
      expectError(refusal, 403, 'forbidden');
      expect(stage.backends.wsBackend.upgrades.length).toBe(before);
      const opened = await openWs(wsUrl('/ws/admin/live'), { headers: { cookie: cookies.get('root') as string } });
      expect(opened.ok).toBe(true);
      if (opened.ok) opened.ws.terminate();
    });

    it('an upgrade is a GET to a method allowlist: 405 with Allow', async () => {
      const refusal = await upgradeRefusal(openWs(wsUrl('/ws/feed'), { headers: { cookie: cookies.get('root') as string } }));
      expectError(refusal, 405, 'method_not_allowed');
      expect(refusal.headers['allow']).toBe('POST');
    });
  });
});
