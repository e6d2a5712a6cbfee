import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { useProxyStack } from '../helpers/proxy-stack.ts';

/**
 * Security case 123 (RL-PER-USER): authenticated traffic is counted by who is calling, not from where (BBA
 * §6.1.3.5): (a) users behind one NAT address are not throttled as a group; (b) one session spread over many
 * addresses is still one caller. The addresses arrive through a trusted proxy (TRUST_PROXY=127.0.0.1).
 */
describe('rate limits key authenticated callers by session, not by address', () => {
  const stack = useProxyStack({
    routes: (backendUrl) => [{ frontendHost: '*', backend: backendUrl, rateLimit: { requests: 3, windowSeconds: 60 } }],
    env: { TRUST_PROXY: '127.0.0.1' },
  });
  const statuses = async (cookie: string, n: number, ip: () => string) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++)
      out.push((await send(stack.url, { path: '/api/me', headers: ['Cookie', cookie, 'X-Forwarded-For', ip()] })).status);
    return out;
  };

  it('(a) three users on one address each get the whole limit', async () => {
    const nat = () => '198.51.100.7';
    const users = [await stack.loginAs('nat-user-1'), await stack.loginAs('nat-user-2'), await stack.loginAs('nat-user-3')];
    for (const cookie of users) expect(await statuses(cookie, 3, nat)).toEqual([200, 200, 200]);
    for (const cookie of users) expect(await statuses(cookie, 1, nat)).toEqual([429]);
  });

  it('(b) one session from a new address on every request is limited as one caller', async () => {
    const cookie = await stack.loginAs('roaming-user');
    const anywhere = () => `203.0.113.${randomInt(1, 255)}`;
    expect(await statuses(cookie, 6, anywhere)).toEqual([200, 200, 200, 429, 429, 429]);
  });
});
