import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { idpMetadata, makeSigningKey, nowSeconds, signJwt, type SigningKey } from '../helpers/token-kit.ts';

const API_AUDIENCE = 'https://api.gatehouse.test';

/**
 * JWKS-STORM (29): a flood of bearer JWTs naming made-up `kid`s must not turn into a flood of JWKS fetches at the
 * IdP. The JWKS is served through a counting relay (OIDC_JWKS_ENDPOINT) so every fetch Gatehouse makes is seen.
 */
describe('bearer tokens with random kids', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;
  let backend: TestBackend;
  let relay: Server;
  let jwksFetches = 0;
  let rsa: SigningKey;
  let attacker: SigningKey;

  beforeAll(async () => {
    [rsa, attacker] = await Promise.all([makeSigningKey('RS256'), makeSigningKey('ES256')]);
    backend = await startBackend();
    idp = await startIdp({ gatehouseBaseUrls: ['http://127.0.0.1:1'], jwks: { keys: [rsa.privateJwk] } });
    const jwksUri = (await idpMetadata(idp))['jwks_uri'] as string;
    relay = createServer((_req, res) => {
      jwksFetches++;
      void fetch(jwksUri).then(async (r) => {
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(await r.text());
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    gh = await startGatehouse({
      idp,
      redisUrl: inject('redisUrl'),
      yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`,
      env: { API_AUDIENCE, OIDC_JWKS_ENDPOINT: `http://127.0.0.1:${(relay.address() as AddressInfo).port}/jwks` },
    });
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([idp?.close(), backend?.close(), new Promise<void>((r) => (relay ? relay.close(() => r()) : r()))]);
  });

  it('1,000 tokens with unknown kids cost at most one JWKS fetch per cooldown window, and are all refused', async () => {
    const claims = () => ({ iss: idp.issuer, aud: API_AUDIENCE, sub: 'svc', iat: nowSeconds(), exp: nowSeconds() + 60, jti: randomUUID() });
    const valid = await fetch(`${gh.url}/api/storm/valid`, { headers: { authorization: `Bearer ${await signJwt(rsa, claims())}` } });
    await valid.body?.cancel();
    expect(valid.status).toBe(200);
    expect(jwksFetches).toBe(1);

    const started = Date.now();
    const statuses: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const tokens = await Promise.all(
        Array.from({ length: 50 }, () => signJwt({ ...attacker, alg: 'ES256' }, claims(), { kid: randomUUID() })),
      );
      const responses = await Promise.all(tokens.map((t) => fetch(`${gh.url}/api/storm/x`, { headers: { authorization: `Bearer ${t}` } })));
      for (const r of responses) {
        statuses.push(r.status);
        await r.body?.cancel();
      }
    }
    expect(statuses).toHaveLength(1000);
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(backend.requests.filter((r) => r.url === '/storm/x')).toHaveLength(0);
    // jose's cooldown is 30 s from the last fetch: the fetch above covers the whole storm.
    expect(jwksFetches).toBe(1);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
