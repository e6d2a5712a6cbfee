import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

const randomIp = () => `${randomInt(1, 224)}.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

/**
 * Security case 121 (RL-XFF): without TRUST_PROXY, X-Forwarded-For is the client's word and names no bucket. One
 * direct client sending a fresh random address on every request shares one bucket, and gets 429 at the limit, on
 * /api and on /auth alike.
 */
describe('X-Forwarded-For cannot buy a fresh rate-limit bucket', () => {
  const proxy = useBareProxy({
    config: 'rateLimits:\n  auth: { requests: 5, windowSeconds: 60 }\n  api: { requests: 5, windowSeconds: 60 }\n',
  });

  for (const path of ['/api/items', '/auth/me']) {
    it(`${path}: 20 requests with random X-Forwarded-For from one peer share one bucket`, async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await send(proxy.url, { path, headers: ['X-Forwarded-For', `${randomIp()}, ${randomIp()}`] });
        statuses.push(res.status);
      }
      // /auth/me without a session is a 401 once admitted: what matters is where the 429s start.
      expect(statuses.slice(0, 5).every((s) => s !== 429)).toBe(true);
      expect(statuses.slice(5)).toEqual(Array.from({ length: 15 }, () => 429));
    });
  }
});
