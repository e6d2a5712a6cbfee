import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { send, startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { sessionCookieOf, sleep, storeKeyOf, waitUntil } from '../helpers/token-kit.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const OPERATOR = 'opal';

/** A backend that answers its own name (after 800 ms on /slow), so a test sees which routing served it. */
function named(name: string): Promise<TestBackend> {
  return startBackend((req, res) => {
    const answer = () => res.end(req.url?.startsWith('/private') ? `${name} private` : name);
    if (req.url?.startsWith('/slow')) setTimeout(() => res.end(`${name} after a wait`), 800);
    else answer();
    return true;
  });
}

const routingTo = (backend: string, privateBackend: string, claims = `[${OPERATOR}@example.test]`) =>
  mappingsYaml(
    [
      { frontendHost: '*', pathPrefix: '/private', backend: privateBackend, auth: 'required' },
      { frontendHost: '*', backend, auth: 'none' },
    ],
    `admin:\n  requireClaims:\n    email: ${claims}\n`,
  );

/**
 * The admin configuration API on one instance: GET/PUT /admin/config, reload, history, file edits, with the token and
 * with an operator's session (admin.requireClaims), and what every other endpoint asks of a caller.
 */
describe('admin config API', () => {
  const stage = useStage({
    backends: { a: () => named('A'), b: () => named('B') },
    yaml: ({ a, b }) => routingTo(a.url, b.url),
    gatehouse: { env: { ADMIN_TOKEN, BACKEND_B: 'http://127.0.0.1:1' }, configSync: true },
    more: { bare: { configSync: true, yaml: 'mappings: []\n' } },
  });
  const gh = () => stage.gh;
  let operator: string;
  let user: string;
  beforeAll(async () => {
    const op = new Browser();
    await op.login(stage.gh.url, OPERATOR);
    operator = sessionCookieOf(op, stage.gh).header;
    const ada = new Browser();
    await ada.login(stage.gh.url, 'ada');
    user = sessionCookieOf(ada, stage.gh).header;
  });

  type Init = Omit<RequestInit, 'headers'> & { headers?: Record<string, string> };
  const call = (path: string, init: Init = {}) => fetch(`${gh().url}/admin${path}`, { ...init, headers: init.headers ?? {} });
  const asAdmin = (path: string, init: Init = {}) => call(path, { ...init, headers: { 'x-admin-token': ADMIN_TOKEN, ...init.headers } });
  const current = async () => (await (await asAdmin('/config')).json()) as Record<string, unknown> & { version: number; text: string };
  const put = (text: string, ifMatch: string | number | undefined, headers: Record<string, string> = { 'x-admin-token': ADMIN_TOKEN }) =>
    call('/config', {
      method: 'PUT',
      body: text,
      headers: { 'content-type': 'application/yaml', ...(ifMatch === undefined ? {} : { 'if-match': String(ifMatch) }), ...headers },
    });
  const who = async (path = '/who') => (await fetch(`${gh().url}/api${path}`)).text();
  const audits = () => gh().logs.filter((l) => l['msg'] === 'admin audit');
  const { a, b } = { a: () => stage.backends.a, b: () => stage.backends.b };
  const restore = async () => {
    const now = await current();
    const res = await put(routingTo(a().url, b().url), now.version);
    expect(res.status).toBe(200);
  };

  describe('authorisation', () => {
    const endpoints: Array<[string, string, string?]> = [
      ['GET', '/config'],
      ['PUT', '/config', 'mappings: []\n'],
      ['POST', '/config/reload'],
      ['GET', '/config/history'],
      ['GET', '/sessions?sub=ada'],
      ['DELETE', `/sessions/${'K'.repeat(43)}`],
      ['POST', '/users/ada/revoke'],
      ['GET', '/health'],
    ];

    it.each(endpoints)(
      '%s %s without credentials → 401 admin_unauthorized, saying admin credentials are needed',
      async (method, path, body) => {
        const res = await call(path, { method, ...(body ? { body, headers: { 'if-match': '*' } } : {}) });
        const json = (await res.json()) as { error: string; message: string };
        expect({ status: res.status, error: json.error }).toEqual({ status: 401, error: 'admin_unauthorized' });
        expect(json.message).toMatch(/admin credentials/i);
        expect(res.headers.get('cache-control')).toMatch(/no-store/);
      },
    );

    it.each(endpoints)("%s %s with a user's session without the required claims → 403 admin_forbidden", async (method, path, body) => {
      const res = await call(path, { method, headers: { cookie: user, 'if-match': '*', origin: gh().url }, ...(body ? { body } : {}) });
      await expectError(res, 403, 'admin_forbidden');
    });

    it('a wrong token never falls back to the session sent beside it; a token in the query string is refused', async () => {
      await expectError(
        await call('/config', { headers: { cookie: operator, 'x-admin-token': `${ADMIN_TOKEN.slice(0, -1)}X` } }),
        401,
        'admin_unauthorized',
      );
      await expectError(await call(`/config?token=${ADMIN_TOKEN}`), 401, 'admin_unauthorized');
      await expectError(await call('/config', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }), 401, 'admin_unauthorized');
    });

    it("an operator's session with the claims reads; unsafe calls also need a same-origin request", async () => {
      const read = await call('/config', { headers: { cookie: operator } });
      expect(read.status).toBe(200);
      const { version, text } = (await read.json()) as { version: number; text: string };
      await expectError(await put(text, version, { cookie: operator }), 403, 'origin_not_allowed', 'no Origin, no Sec-Fetch-Site');
      await expectError(await put(text, version, { cookie: operator, origin: 'https://evil.example' }), 403, 'origin_not_allowed');
      await expectError(await put(text, version, { cookie: operator, 'sec-fetch-site': 'cross-site' }), 403, 'origin_not_allowed');
      await expectError(await put(text, version, { cookie: operator, 'sec-fetch-site': 'same-site' }), 403, 'origin_not_allowed');
      await expectError(await call('/users/ada/revoke', { method: 'POST', headers: { cookie: operator } }), 403, 'origin_not_allowed');
      expect((await current()).version).toBe(version);
      const ok = await put(text, version, { cookie: operator, origin: gh().url, 'sec-fetch-site': 'same-origin' });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ version: version + 1, source: 'admin', by: `operator:${OPERATOR}` });
      expect(audits().at(-1)).toMatchObject({
        who: `operator:${OPERATOR}`,
        action: 'config replaced',
        ip: expect.stringMatching(/127\.0\.0\.1/),
      });
    });

    it('with neither ADMIN_TOKEN nor admin.requireClaims, /admin does not exist (404), whatever is sent', async () => {
      const bare = stage.more.bare.url;
      for (const headers of [{}, { 'x-admin-token': ADMIN_TOKEN }] as Array<Record<string, string>>) {
        await expectError(await fetch(`${bare}/admin/config`, { headers }), 404, 'not_found');
        await expectError(await fetch(`${bare}/admin/users/ada/revoke`, { method: 'POST', headers }), 404, 'not_found');
      }
    });

    it('/admin is not reachable through /api or another spelling (ADM-EXPOSURE)', async () => {
      const headers = { 'x-admin-token': ADMIN_TOKEN };
      await expectError(await fetch(`${gh().url}/ADMIN/config`, { headers }), 404, 'not_found');
      await expectError(await fetch(`${gh().url}/Admin/config`, { headers }), 404, 'not_found');
      for (const path of ['/api/../admin/config', '/api/%2e%2e/admin/config', '/api/%2E%2E/admin/config']) {
        const traversal = await send(gh().url, { path, headers: ['X-Admin-Token', ADMIN_TOKEN] });
        expectError(traversal, 400, 'invalid_path', path);
      }
    });
  });

  describe('GET /admin/config', () => {
    it('answers the text, its version (also as ETag), where it came from, and that If-Match is required', async () => {
      const res = await asAdmin('/config');
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown> & { version: number };
      expect(res.headers.get('etag')).toBe(`"${body.version}"`);
      expect(body).toMatchObject({
        source: expect.any(String),
        by: expect.any(String),
        at: expect.any(String),
        replica: expect.any(String),
      });
      expect(body['ifMatch']).toMatch(/required/);
      expect(body['note']).toMatch(/environment variables take a restart/);
    });

    it('redacts: no admin token, client secret, Redis URL or resolved ${VAR}; a URL password is masked (ADM-REDACT)', async () => {
      const before = await current();
      const text = `defaultBackend: \${BACKEND_B}\n${routingTo(a().url, b().url)}`;
      expect((await put(text, before.version)).status).toBe(200);
      const raw = await (await asAdmin('/config')).text();
      expect(raw).toContain('${BACKEND_B}');
      for (const secret of [ADMIN_TOKEN, stage.idp.clientSecret, 'http://127.0.0.1:1', 'redis://']) expect(raw).not.toContain(secret);
      const { redactConfigText } = await import('../../src/admin/routes.ts');
      expect(redactConfigText('x: http://user:hunter2@h/ y: redis://h?password=hunter3 z: http://u:${PASS}@h/')).toBe(
        'x: http://user:***@h/ y: redis://h?password=*** z: http://u:${PASS}@h/',
      );
      await restore();
    });
  });

  describe('PUT /admin/config', () => {
    it('applies a valid config at once, writes config.yml, answers the new version and writes one audit line', async () => {
      expect(await who()).toBe('A');
      const before = await current();
      const auditsBefore = audits().length;
      const text = routingTo(b().url, a().url);
      const res = await put(text, `"${before.version}"`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        version: before.version + 1,
        source: 'admin',
        by: 'admin-token',
        fileWritten: true,
        fromAnotherReplica: false,
      });
      expect(res.headers.get('etag')).toBe(`"${before.version + 1}"`);
      expect(await who()).toBe('B');
      expect(readFileSync(gh().configPath, 'utf8')).toBe(text);
      const lines = audits().slice(auditsBefore);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        who: 'admin-token',
        action: 'config replaced',
        before: expect.any(String),
        after: expect.any(String),
      });
      expect(lines[0]?.['before']).not.toBe(lines[0]?.['after']);
      await restore();
      expect(await who()).toBe('A');
    });

    it('accepts JSON as well as YAML', async () => {
      const before = await current();
      const json = JSON.stringify({ mappings: [{ frontendHost: '*', backend: b().url, auth: 'none' }] });
      const res = await put(json, before.version, { 'x-admin-token': ADMIN_TOKEN, 'content-type': 'application/json' });
      expect(res.status).toBe(200);
      expect(await who()).toBe('B');
      await restore();
    });

    it('an invalid config is 400 config_invalid listing every field error; running config, version and file stay (ADM-VALIDATE)', async () => {
      const before = await current();
      const fileBefore = readFileSync(gh().configPath, 'utf8');
      const text = mappingsYaml([
        { frontendHost: '*', backend: 'file:///etc/passwd', auth: 'sometimes' },
        { frontendHost: '*', backend: 'gopher://127.0.0.1:70/', timeout: 5 },
      ]);
      const res = await put(text, before.version);
      const body = (await res.json()) as { error: string; problems: string[] };
      expect({ status: res.status, error: body.error }).toEqual({ status: 400, error: 'config_invalid' });
      const problems = body.problems.join('\n');
      expect(problems).toMatch(/\/mappings\/0\/backend/);
      expect(problems).toMatch(/\/mappings\/0\/auth/);
      expect(problems).toMatch(/\/mappings\/1\/backend/);
      expect(problems).toMatch(/\/mappings\/1\/timeout/);
      expect(await who()).toBe('A');
      expect((await current()).version).toBe(before.version);
      expect(readFileSync(gh().configPath, 'utf8')).toBe(fileBefore);
      const duplicate = await put(
        mappingsYaml([
          { frontendHost: '*', backend: a().url },
          { frontendHost: '*', backend: b().url },
        ]),
        before.version,
      );
      await expectError(duplicate, 400, 'config_invalid', 'duplicate route');
      await expectError(await put('mappings: [', before.version), 400, 'config_invalid', 'YAML syntax');
      await expectError(await put('', before.version), 400, 'config_invalid', 'empty body');
    });

    it('a route rule that does not compile (a backtracking-prone /:a-:b) is config_invalid naming it; nothing changes', async () => {
      const before = await current();
      const text = `${routingTo(a().url, b().url)}    rules:\n      - { match: { path: "/items/:a-:b" }, auth: none }\n`;
      const res = await put(text, before.version);
      const body = (await res.json()) as { error: string; problems: string[] };
      expect({ status: res.status, error: body.error }).toEqual({ status: 400, error: 'config_invalid' });
      expect(body.problems.join('\n')).toMatch(/rules\[0\]\.match\.path/);
      expect((await current()).version).toBe(before.version);
      expect(await who()).toBe('A');
    });

    it.each([
      [
        '__proto__ at the top',
        `{"__proto__":{"auth":"none","public":true},"mappings":[{"frontendHost":"*","pathPrefix":"/private","backend":"B"}]}`,
      ],
      [
        'constructor.prototype at the top',
        `{"constructor":{"prototype":{"auth":"none"}},"mappings":[{"frontendHost":"*","pathPrefix":"/private","backend":"B"}]}`,
      ],
      ['__proto__ in a mapping', `{"mappings":[{"frontendHost":"*","pathPrefix":"/private","backend":"B","__proto__":{"auth":"none"}}]}`],
      ['__proto__ in YAML', `__proto__:\n  auth: none\nmappings:\n  - frontendHost: "*"\n    pathPrefix: /private\n    backend: B\n`],
    ])('prototype pollution (%s) is refused and protected routes still answer 401 (ADM-PROTO)', async (_name, body) => {
      const before = await current();
      const res = await put(body.replaceAll('"B"', JSON.stringify(b().url)).replace('backend: B', `backend: ${b().url}`), before.version, {
        'x-admin-token': ADMIN_TOKEN,
        'content-type': body.startsWith('{') ? 'application/json' : 'application/yaml',
      });
      await expectError(res, 400, 'config_invalid');
      expect(({} as Record<string, unknown>)['auth']).toBeUndefined();
      await expectError(await fetch(`${gh().url}/api/private/x`), 401, 'unauthorized');
      expect((await current()).version).toBe(before.version);
    });

    it('If-Match is required (428); a stale version is 412 and changes nothing; * overwrites', async () => {
      const before = await current();
      const text = routingTo(b().url, a().url);
      const missing = await put(text, undefined);
      const missingBody = (await missing.json()) as Record<string, unknown>;
      expect({ status: missing.status, error: missingBody['error'], currentVersion: missingBody['currentVersion'] }).toEqual({
        status: 428,
        error: 'precondition_required',
        currentVersion: before.version,
      });
      const stale = await put(text, before.version - 1);
      const staleBody = (await stale.json()) as Record<string, unknown>;
      expect({ status: stale.status, error: staleBody['error'], currentVersion: staleBody['currentVersion'] }).toEqual({
        status: 412,
        error: 'precondition_failed',
        currentVersion: before.version,
      });
      await expectError(await put(text, 'v7'), 400, 'bad_request', 'malformed If-Match');
      expect(await who()).toBe('A');
      expect((await current()).version).toBe(before.version);
      expect((await put(text, '*')).status).toBe(200);
      expect(await who()).toBe('B');
      await restore();
    });

    it('a request under way during a swap completes on the routing it started with', async () => {
      const before = await current();
      const underWay = fetch(`${gh().url}/api/slow`).then((r) => r.text());
      await sleep(150);
      expect((await put(routingTo(b().url, a().url), before.version)).status).toBe(200);
      expect(await who()).toBe('B');
      expect(await underWay).toBe('A after a wait');
      await restore();
    });
  });

  describe('reload, file edits and history', () => {
    it('POST /admin/config/reload re-reads config.yml; an invalid file is 400 and the running config stays', async () => {
      const path = gh().configPath;
      const before = await current();
      writeFileSync(path, mappingsYaml([{ frontendHost: '*', backend: a().url, auth: 'sometimes' }]));
      const bad = await asAdmin('/config/reload', { method: 'POST' });
      const badBody = (await bad.json()) as { error: string; problems: string[] };
      expect({ status: bad.status, error: badBody.error }).toEqual({ status: 400, error: 'config_invalid' });
      expect(badBody.problems.join('\n')).toMatch(/\/mappings\/0\/auth/);
      expect(await who()).toBe('A');
      writeFileSync(path, routingTo(b().url, a().url));
      const ok = await asAdmin('/config/reload', { method: 'POST' });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { version: number }).version).toBeGreaterThan(before.version);
      expect(await who()).toBe('B');
      await restore();
    });

    it('an edit of config.yml on disk is applied (debounced); an invalid edit is logged and ignored', async () => {
      const path = gh().configPath;
      await sleep(500);
      // A text the cluster never had: one it had is taken for a stale read and left to an explicit reload.
      writeFileSync(path, `# edited on disk ${Date.now()}\n${routingTo(b().url, a().url)}`);
      await waitUntil(async () => (await who()) === 'B', 3000, 'the edit applied');
      const edited = await current();
      expect(edited).toMatchObject({ source: 'file' });
      writeFileSync(path, 'mappings:\n  - frontendHost: "*"\n    backend: nope\n');
      await waitUntil(
        () => gh().logs.some((l) => l['msg'] === 'configuration not reloaded: the running one stays'),
        3000,
        'the refusal logged',
      );
      expect(await who()).toBe('B');
      expect((await current()).version).toBe(edited.version);
      await restore();
      expect(await who()).toBe('A');
    });

    it('GET /admin/config/history lists the last N versions, newest first, with who and when', async () => {
      const res = await asAdmin('/config/history?limit=3');
      const { versions } = (await res.json()) as { versions: Array<Record<string, unknown> & { version: number }> };
      expect(versions).toHaveLength(3);
      const top = (await current()).version;
      expect(versions.map((v) => v.version)).toEqual([top, top - 1, top - 2]);
      for (const v of versions) expect(v).toMatchObject({ by: expect.any(String), at: expect.any(String), source: expect.any(String) });
      expect(JSON.stringify(versions)).not.toContain('mappings');
    });
  });

  describe('sessions and health', () => {
    it("GET /admin/sessions?sub= lists a user's sessions with created, last seen, IP and user agent, never a token", async () => {
      const second = new Browser();
      await second.login(gh().url, 'ada');
      const res = await asAdmin('/sessions?sub=ada');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { sessions: Array<Record<string, unknown>> };
      expect(body.sessions.length).toBeGreaterThanOrEqual(2);
      const key = storeKeyOf(sessionCookieOf(second, gh()).value);
      const mine = body.sessions.find((s) => s['storeKey'] === key);
      expect(Object.keys(mine ?? {}).sort()).toEqual(['createdAt', 'expiresAt', 'ip', 'lastSeenAt', 'storeKey', 'userAgent']);
      expect(mine).toMatchObject({
        ip: expect.stringMatching(/127\.0\.0\.1/),
        userAgent: expect.any(String),
        createdAt: expect.any(String),
      });
      expect(JSON.stringify(body)).not.toMatch(/token|eyJ/i);
      await expectError(await asAdmin('/sessions'), 400, 'bad_request');
    });

    it("GET /admin/health answers each backend's health and breaker, which replica answered, and readiness", async () => {
      const res = await asAdmin('/health');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { backends: Array<Record<string, unknown>>; breakers: unknown[]; replica: string };
      expect(body).toMatchObject({ replica: expect.any(String), readiness: { ok: true }, breakers: expect.any(Array) });
      // Only mappings with a healthCheck are probed; this stage's have none.
      expect(body.backends).toEqual([]);
    });

    it('a revocation by the token is one audit line naming who, what and from where', async () => {
      const before = audits().length;
      expect((await asAdmin('/users/nobody/revoke', { method: 'POST' })).status).toBe(200);
      expect(audits().slice(before)).toEqual([
        expect.objectContaining({ who: 'admin-token', action: 'user revoked', sub: 'nobody', ip: expect.any(String) }),
      ]);
    });
  });
});
