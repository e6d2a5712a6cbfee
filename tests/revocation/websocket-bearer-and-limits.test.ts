import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { sendRaw } from '../helpers/backends.ts';
import { useReplicas } from '../helpers/replicas.ts';
import { makeSigningKey, nowSeconds, openWs, signJwt, upgradeStatus, type SigningKey } from '../helpers/token-kit.ts';
import { expectError } from '../helpers/expect-error.ts';

const API_AUDIENCE = 'https://api.gatehouse.test';
const ADMIN_TOKEN = 'admin-token-for-tests-0123456789abcdef';

/**
 * WS-REVOKE (98) for bearer clients and WS-LIMITS (103): a WebSocket opened with a bearer token ends when its
 * user is revoked, on every replica; one identity holds at most WS_MAX_PER_IDENTITY sockets.
 */
describe('WebSockets of bearer clients: revocation and the per-identity limit', () => {
  let rsa: SigningKey;
  beforeAll(async () => {
    rsa = await makeSigningKey('RS256');
  });
  const stage = useReplicas(() => ({
    idp: { jwks: { keys: [rsa.privateJwk] } },
    env: { API_AUDIENCE, ADMIN_TOKEN, WS_MAX_PER_IDENTITY: '2' },
  }));

  const token = (sub: string) => {
    const iat = nowSeconds() - 1;
    return signJwt(rsa, { iss: stage.idp.issuer, aud: API_AUDIENCE, sub, iat, exp: iat + 300, jti: randomUUID() });
  };

  it('closes a bearer WebSocket held on B with 1008 within 1 s of a user revocation on A', async () => {
    const auth = { authorization: `Bearer ${await token('svc-stream')}` };
    const other = { authorization: `Bearer ${await token('svc-other')}` };
    const held = await openWs(`${stage.b.url}/api/ws/stream`, undefined, auth);
    const bystander = await openWs(`${stage.b.url}/api/ws/stream`, undefined, other);
    const res = await fetch(`${stage.a.url}/admin/users/svc-stream/revoke`, { method: 'POST', headers: { 'x-admin-token': ADMIN_TOKEN } });
    expect(res.status).toBe(200);
    const revokedAt = Date.now();
    const closed = await held.closed;
    expect(closed.code).toBe(1008);
    expect(closed.at - revokedAt).toBeLessThan(1000);
    // The token, issued before the revocation, cannot open a new one either; another user is untouched.
    expect(await upgradeStatus(`${stage.b.url}/api/ws/stream`, undefined, auth)).toBe(401);
    expect(bystander.ws.readyState).toBe(bystander.ws.OPEN);
    bystander.ws.close(1000);
  });

  it('refuses a third WebSocket of one identity with 429 and accepts one again after a close', async () => {
    const auth = { authorization: `Bearer ${await token('svc-busy')}` };
    const first = await openWs(`${stage.a.url}/api/ws/one`, undefined, auth);
    const second = await openWs(`${stage.a.url}/api/ws/two`, undefined, auth);
    expect(await upgradeStatus(`${stage.a.url}/api/ws/three`, undefined, auth)).toBe(429);
    first.ws.close(1000);
    await first.closed;
    await new Promise((r) => setTimeout(r, 50));
    const again = await openWs(`${stage.a.url}/api/ws/again`, undefined, auth);
    again.ws.close(1000);
    second.ws.close(1000);
    await Promise.all([again.closed, second.closed]);
  });

  it('answers a request without Host with the JSON invalid_host', async () => {
    const res = await sendRaw(stage.a.url, 'GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n');
    expectError(res, 400, 'invalid_host');
  });
});
