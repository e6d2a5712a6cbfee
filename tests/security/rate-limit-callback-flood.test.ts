import { describe, expect, it } from 'vitest';
import { send, startBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';

/**
 * Security case 124 (RL-CALLBACK-AMP): a flood of callbacks with a bogus state makes no token request (the state is
 * checked first, RFC 9700 §4.7.1) and meets 429 past the /auth limit; a flood of logins writes at most the limit's
 * worth of login transactions (each with a TTL), so Redis does not grow without bound.
 */
describe('callback and login floods', () => {
  const stage = useStage(() => ({
    backends: { backend: startBackend },
    yaml: ({ backend }) =>
      mappingsYaml([{ frontendHost: '*', backend: backend.url }], 'rateLimits:\n  auth: { requests: 10, windowSeconds: 60 }\n'),
    gatehouse: { env: { TRUST_PROXY: '127.0.0.1' } },
  }));
  const tokenRequests = () => (stage.idp.events.get('grant.success') ?? 0) + (stage.idp.events.get('grant.error') ?? 0);

  it('50 callbacks with a bogus state: no token request, invalid_state up to the limit, then 429', async () => {
    const before = tokenRequests();
    const answers = [];
    for (let i = 0; i < 50; i++)
      answers.push(await send(stage.gh.url, { path: `/auth/callback?code=x${i}&state=y${i}`, headers: ['X-Forwarded-For', '192.0.2.50'] }));
    answers.slice(0, 10).forEach((a, i) => expectError(a, 400, 'invalid_state', `callback ${i}`));
    answers.slice(10).forEach((a, i) => expectError(a, 429, 'too_many_requests', `callback ${i + 10}`));
    expect(tokenRequests() - before).toBe(0);
    expect(answers[0]?.headers['ratelimit-policy']).toBe('"auth";q=10;w=60');
    expect(answers[0]?.headers['ratelimit']).toMatch(/^"auth";r=9;t=\d+$/);
    expect(Number(answers[10]?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });

  it('100 logins from one client write at most 10 login transactions, each with a TTL', async () => {
    const prefix = stage.gh.config.redis.keyPrefix;
    const before = new Set(await stage.redis.keys(`${prefix}tx:*`));
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++)
      statuses.push((await send(stage.gh.url, { path: '/auth/login', headers: ['X-Forwarded-For', '192.0.2.51'] })).status);
    expect(statuses.filter((s) => s === 302).length).toBe(10);
    expect(statuses.filter((s) => s === 429).length).toBe(90);
    const written = (await stage.redis.keys(`${prefix}tx:*`)).filter((k) => !before.has(k));
    expect(written.length).toBe(10);
    for (const key of written) expect(await stage.redis.pttl(key)).toBeGreaterThan(0);
  });

  it('does not count the back-channel logout: the IdP calling with a signed token is never refused for its rate', async () => {
    const answers = [];
    for (let i = 0; i < 15; i++)
      answers.push(
        await send(stage.gh.url, {
          method: 'POST',
          path: '/auth/backchannel-logout',
          headers: ['X-Forwarded-For', '192.0.2.52', 'Content-Type', 'application/x-www-form-urlencoded'],
          body: 'logout_token=not-a-jwt',
        }),
      );
    answers.forEach((a, i) => expectError(a, 400, 'invalid_logout_token', `logout ${i}`));
    expect(answers[0]?.headers['ratelimit']).toBeUndefined();
  });
});
