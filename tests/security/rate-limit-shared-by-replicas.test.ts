import { describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { useReplicas } from '../helpers/replicas.ts';

/**
 * The count lives in Redis, so a limit holds for the deployment, not per process: two replicas on one Redis with
 * a limit of 100, under 300 concurrent requests from one session split between them, admit exactly 100.
 */
describe('rate limits shared across replicas', () => {
  const stage = useReplicas({ config: 'rateLimits:\n  api: { requests: 100, windowSeconds: 60 }\n' });

  it('admits at most 100 of 300 concurrent requests spread over two replicas, and forwards only those', async () => {
    const browser = new Browser();
    const login = await browser.login(stage.a.url, 'alice');
    expect(login.callbackStatus).toBe(302);
    const cookie = browser.cookieHeader(stage.a.url) as string;
    const before = stage.backend.requests.length;
    const statuses = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const res = await fetch(`${(i % 2 === 0 ? stage.a : stage.b).url}/api/shared/${i}`, { headers: { cookie } });
        await res.body?.cancel();
        return res.status;
      }),
    );
    const count = (s: number) => statuses.filter((x) => x === s).length;
    expect({ admitted: count(200), refused: count(429) }).toEqual({ admitted: 100, refused: 200 });
    expect(stage.backend.requests.length - before).toBe(100);
  });
});
