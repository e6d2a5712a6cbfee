import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createRedisStore } from '../../src/store/redis.ts';
import type { Store } from '../../src/store/store.ts';
import { header, startBackend, type TestBackend } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { testClock } from '../helpers/clock.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const TOKEN_TTL_SECONDS = 60;

/**
 * The IdP has rotated the refresh token, then Redis fails the write that stores it: the write is retried (the
 * refresh lock still held) instead of leaving the session with a spent refresh token, which a rotating IdP would
 * treat as reuse at the next refresh and answer by ending the whole grant.
 */
describe('refreshed tokens survive a failing session-store write', () => {
  let idp: TestIdp;
  let backend: TestBackend;
  let gh: TestGatehouse;
  let store: Store;
  let failWrites = 0;
  const clock = testClock();

  beforeAll(async () => {
    const { port, url } = await reservePort();
    idp = await startIdp({ gatehouseBaseUrls: [url], accessTokenTtlSeconds: TOKEN_TTL_SECONDS, rotateRefreshTokens: true });
    backend = await startBackend();
    const real = createRedisStore({ url: inject('redisUrl'), keyPrefix: `retry-${randomUUID()}:`, log: createLogger({ level: 'silent' }) });
    await real.ready(5000);
    // The session rewrite is a compare-and-set: fail the next `failWrites` of them as a Redis timeout would.
    store = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'compareAndSet' && failWrites > 0) {
          failWrites--;
          return () => Promise.reject(new Error('Command timed out'));
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    gh = await startGatehouse({
      idp,
      port,
      store,
      yaml: mappingsYaml([{ frontendHost: '*', backend: backend.url }]),
      env: { TOKEN_REFRESH_SKEW_SECONDS: '1' },
      now: clock.now,
    });
  });
  afterAll(async () => {
    await gh?.close();
    await store?.close();
    await Promise.all([idp?.close(), backend?.close()]);
  });

  it('retries the write, serves the new token, and the next refresh still works (the rotated token was kept)', async () => {
    const browser = new Browser();
    await browser.login(gh.url, 'rory');
    const api = async (path: string) => {
      const res = await browser.fetch(`${gh.url}/api${path}`);
      await res.body?.cancel();
      return res.status;
    };
    expect(await api('/r/0')).toBe(200);
    const first = header(backend.last(), 'authorization');

    failWrites = 2;
    clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
    expect(await api('/r/1')).toBe(200);
    const second = header(backend.last(), 'authorization');
    expect(second).not.toBe(first);
    expect(failWrites).toBe(0);
    expect(gh.logs.filter((l) => l['msg'] === 'refreshed tokens not stored yet (session store); retrying')).toHaveLength(2);

    // A second refresh sends the refresh token stored by the retried write: a spent one would be invalid_grant (401).
    clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
    expect(await api('/r/2')).toBe(200);
    expect(header(backend.last(), 'authorization')).not.toBe(second);
  });
});
