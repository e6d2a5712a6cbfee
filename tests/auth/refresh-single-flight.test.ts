import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { reservePort, startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';

describe('single-flight refresh across two replicas sharing Redis', () => {
  let idp: TestIdp;
  let a: TestGatehouse;
  let b: TestGatehouse;
  let backend: Server;
  const seenTokens: string[] = [];

  beforeAll(async () => {
    backend = createServer((req, res) => {
      seenTokens.push(String(req.headers.authorization));
      res.end('ok');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    const backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const pa = await reservePort();
    const pb = await reservePort();
    idp = await startIdp({ gatehouseBaseUrls: [pa.url, pb.url], accessTokenTtlSeconds: 4 });
    const shared = { REDIS_KEY_PREFIX: `rf${randomBytes(3).toString('hex')}:`, TOKEN_REFRESH_SKEW_SECONDS: '1' };
    const yaml = `mappings:\n  - frontendHost: "*"\n    backend: "${backendUrl}"\n`;
    a = await startGatehouse({ idp, redisUrl: inject('redisUrl'), port: pa.port, yaml, env: shared });
    b = await startGatehouse({ idp, redisUrl: inject('redisUrl'), port: pb.port, yaml, env: shared });
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
    await new Promise((r) => setTimeout(r, 3200));
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => fetch(`${(i % 2 ? a : b).url}/api/x`, { headers: { cookie } })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect((idp.events.get('grant.success') ?? 0) - grantsBefore).toBe(1);
    const last50 = seenTokens.slice(-50);
    expect(new Set(last50).size).toBe(1);
    expect(last50[0]).not.toBe(firstToken);
    // The rotated refresh token was stored: a second expiry refreshes again, once, without invalid_grant.
    await new Promise((r) => setTimeout(r, 3200));
    const again = await Promise.all(Array.from({ length: 10 }, (_, i) => fetch(`${(i % 2 ? a : b).url}/api/x`, { headers: { cookie } })));
    expect(again.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect((idp.events.get('grant.success') ?? 0) - grantsBefore).toBe(2);
    expect(idp.events.get('grant.error') ?? 0).toBe(0);
  });
});
