import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { testClock } from '../helpers/clock.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';

/** Long enough that real time never reaches expiry during the test: only the shared clock does. */
const TOKEN_TTL_SECONDS = 60;

describe('single-flight refresh across two replicas sharing Redis', () => {
  let idp: TestIdp;
  let a: TestGatehouse;
  let b: TestGatehouse;
  let backend: Server;
  const seenTokens: string[] = [];
  // Both replicas read one clock, as replicas on synchronised hosts would.
  const clock = testClock();

  beforeAll(async () => {
    backend = createServer((req, res) => {
      seenTokens.push(String(req.headers.authorization));
      res.end('ok');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    const backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const pa = await reservePort();
    const pb = await reservePort();
    idp = await startIdp({ gatehouseBaseUrls: [pa.url, pb.url], accessTokenTtlSeconds: TOKEN_TTL_SECONDS });
    const shared = { REDIS_KEY_PREFIX: `rf${randomBytes(3).toString('hex')}:`, TOKEN_REFRESH_SKEW_SECONDS: '1' };
    const yaml = `mappings:\n  - frontendHost: "*"\n    backend: "${backendUrl}"\n`;
    a = await startGatehouse({ idp, redisUrl: inject('redisUrl'), port: pa.port, yaml, env: shared, now: clock.now });
    b = await startGatehouse({ idp, redisUrl: inject('redisUrl'), port: pb.port, yaml, env: shared, now: clock.now });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await idp?.close();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  it('50 concurrent requests at expiry on two instances cause one refresh at the IdP', async () => {
    const browser = new Browser();
    await browser.login(a.url, 'carol');
    const cookie = browser.cookieHeader(a.url) as string;
    // Warm both replicas' caches with the current token.
    expect((await fetch(`${a.url}/api/x`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${b.url}/api/x`, { headers: { cookie } })).status).toBe(200);
    const firstToken = seenTokens.at(-1);
    const grantsBefore = idp.events.get('grant.success') ?? 0;
    // Just past expiry: a still-valid token would be served at once (stale-while-revalidate); an expired one waits.
    clock.advance(TOKEN_TTL_SECONDS * 1000 + 200);
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => fetch(`${(i % 2 ? a : b).url}/api/x`, { headers: { cookie } })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect((idp.events.get('grant.success') ?? 0) - grantsBefore).toBe(1);
    const last50 = seenTokens.slice(-50);
    expect(new Set(last50).size).toBe(1);
    expect(last50[0]).not.toBe(firstToken);
    // The rotated refresh token was stored: a second expiry refreshes again, once, without invalid_grant.
    clock.advance(TOKEN_TTL_SECONDS * 1000 + 200);
    const again = await Promise.all(Array.from({ length: 10 }, (_, i) => fetch(`${(i % 2 ? a : b).url}/api/x`, { headers: { cookie } })));
    expect(again.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect((idp.events.get('grant.success') ?? 0) - grantsBefore).toBe(2);
    expect(idp.events.get('grant.error') ?? 0).toBe(0);
  });
});
