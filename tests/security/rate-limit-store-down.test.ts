import { describe, expect, it } from 'vitest';
import { send, startBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { waitUntil } from '../helpers/token-kit.ts';

/**
 * Security case 125 (RL-STORE-DOWN), with a redis-server of its own stopped and started again: /api limits fail
 * open (logged once per outage, nothing crashes), /auth limits fall back to a per-process count, and once Redis is
 * back the shared counts hold again without a restart. Clients are told apart by X-Forwarded-For through a trusted
 * loopback proxy.
 */
const ADMIN_TOKEN = 'a'.repeat(40);

describe('rate limits while Redis is down', () => {
  const stage = useStage(() => ({
    ownRedis: true,
    backends: { backend: startBackend },
    yaml: ({ backend }) =>
      mappingsYaml(
        [{ frontendHost: '*', backend: backend.url, auth: 'none' }],
        'rateLimits:\n  auth: { requests: 3, windowSeconds: 60 }\n  api: { requests: 3, windowSeconds: 60 }\n',
      ),
    gatehouse: { env: { TRUST_PROXY: '127.0.0.1', ADMIN_TOKEN } },
  }));
  const api = (client: string) => send(stage.gh.url, { path: '/api/down', headers: ['X-Forwarded-For', client] });
  const auth = (client: string) => send(stage.gh.url, { path: '/auth/me', headers: ['X-Forwarded-For', client] });

  it('/api fails open with one outage line, /auth counts per process, and both count in Redis again once it is back', async () => {
    for (let i = 0; i < 3; i++) expect((await api('192.0.2.1')).status).toBe(200);
    expectError(await api('192.0.2.1'), 429, 'too_many_requests');
    const from = stage.gh.logs.length;

    await stage.redisServer.stop();
    try {
      const backendBefore = stage.backends.backend.requests.length;
      const started = Date.now();
      // A client that had not reached its limit: admitted, uncounted, and without RateLimit fields (none is known).
      for (let i = 0; i < 8; i++) {
        const res = await api('192.0.2.2');
        expect(res.status).toBe(200);
        expect(res.headers['ratelimit']).toBeUndefined();
      }
      expect(Date.now() - started, 'no request waits on the dead Redis').toBeLessThan(4000);
      expect(stage.backends.backend.requests.length - backendBefore).toBe(8);
      // Counted where an operator sees it: the requests admitted uncounted, no more.
      const scrape = await fetch(`${stage.gh.url}/metrics`, { headers: { 'x-admin-token': ADMIN_TOKEN } });
      expect(await scrape.text()).toMatch(/^gatehouse_rate_limit_failed_open_total 8$/m);
      // The client already refused stays refused until its window ends: that count was made, and is kept in memory.
      expectError(await api('192.0.2.1'), 429, 'too_many_requests');

      // /auth: this process counts on its own meanwhile (/auth/me without a session is a 401 once admitted).
      expect([(await auth('192.0.2.3')).status, (await auth('192.0.2.3')).status, (await auth('192.0.2.3')).status]).toEqual([
        401, 401, 401,
      ]);
      expectError(await auth('192.0.2.3'), 429, 'too_many_requests');

      const outage = stage.gh.logs.slice(from).filter((l) => l['dependency'] === 'redis');
      expect(outage.map((l) => l['msg'])).toEqual(['dependency unavailable']);
      expect(outage[0]).toMatchObject({ code: 'session_store_unavailable', detail: 'rate limit api not enforced (fails open)' });
      expect(stage.gh.app.server.listening).toBe(true);
    } finally {
      await stage.redisServer.start();
    }

    // Back without a restart: counted in Redis again (the restarted Redis kept nothing, so the count starts over).
    await waitUntil(async () => (await api('192.0.2.4')).headers['ratelimit'] !== undefined, 10_000, 'Redis counts again', 100);
    for (let i = 0; i < 2; i++) expect((await api('192.0.2.4')).status).toBe(200);
    expectError(await api('192.0.2.4'), 429, 'too_many_requests');
    await waitUntil(
      async () => stage.gh.logs.slice(from).some((l) => l['dependency'] === 'redis' && l['msg'] === 'dependency recovered'),
      5000,
      'the outage to end in the log',
      50,
    );
  });
});
