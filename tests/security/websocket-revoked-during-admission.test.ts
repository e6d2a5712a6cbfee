import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityResolver, Principal } from '../../src/auth/identity.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createOutageLog } from '../../src/observability/outage-log.ts';
import { createAdmission } from '../../src/policy/admit.ts';
import { createRateLimiter } from '../../src/policy/rate-limit.ts';
import { createMemoryRateCounter } from '../../src/store/rate-counter.ts';
import { createRuntime } from '../../src/proxy/runtime.ts';
import { createUpgradeHandler, createWsRegistry, type WsRegistry } from '../../src/proxy/websocket.ts';
import { openWs, startWsBackend, type TestWsBackend } from '../helpers/backends.ts';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * A revocation that reaches this replica while an upgrade's admission is still resolving (after its own
 * revocation checks, during the blocklist reads or a token refresh) finds no connection to close: the
 * upgrade used to open and relay for the revoked session. The upgrade handler now asks again when a
 * revocation overlapped its admission. The identity resolver is a stand-in that holds its answer at that
 * point, the one moment real timing cannot pin down; everything else is the real handler and relay.
 */
describe("a revocation during an upgrade's admission", () => {
  let backend: TestWsBackend;
  let server: Server;
  let url: string;
  let registry: WsRegistry;
  let cookieName: string;
  let release: () => void = () => {};
  let answers: Array<Principal | undefined> = [];
  let hold = false;
  const principal: Principal = {
    kind: 'session',
    claims: { sub: 'alice' },
    accessToken: 't',
    sessionKey: 'S1',
    expiresAt: Date.now() + 3_600_000,
    issuedAt: Date.now(),
  };

  beforeAll(async () => {
    backend = await startWsBackend();
    const config = loadConfig({
      NODE_ENV: 'test',
      APP_BASE_URL: 'http://127.0.0.1:1',
      OIDC_ISSUER: 'http://127.0.0.1:9/unused',
      OIDC_CLIENT_ID: 'u',
      OIDC_CLIENT_SECRET: 'u',
      REDIS_URL: 'redis://127.0.0.1:9',
      GATEHOUSE_CONFIG: writeConfigFile(`mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n    auth: required\n`),
    });
    cookieName = config.session.cookieName;
    const rt = createRuntime(config);
    registry = createWsRegistry();
    const identity: IdentityResolver = {
      resolveCached: () => null,
      resolve: async () => {
        const answer = answers.shift();
        if (hold) {
          hold = false;
          await new Promise<void>((r) => (release = r));
        }
        return answer;
      },
    };
    const sessions = { peek: () => undefined, load: async () => undefined, touch: () => {} };
    const log = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    server = createServer();
    const outages = createOutageLog(log);
    const admit = createAdmission(identity, createRateLimiter({ counter: createMemoryRateCounter(), outages }));
    server.on('upgrade', createUpgradeHandler({ runtime: () => rt, admit, sessions, log, outages, registry }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/chat`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await backend?.close();
  });

  const upgradeWhileRevoking = async (second: Principal | undefined) => {
    // First answer: the session, held until after the revocation; second (the re-check): what the store says then.
    answers = [principal, second];
    hold = true;
    const pending = openWs(url, { headers: { cookie: `${cookieName}=${'A'.repeat(43)}` } });
    await new Promise((r) => setTimeout(r, 100));
    expect(registry.closeSession('S1', 1008, 'session revoked')).toBe(0);
    release();
    return pending;
  };

  it('the session is gone when asked again: 401 unauthorized, and the backend never sees the upgrade', async () => {
    const before = backend.upgrades.length;
    const out = await upgradeWhileRevoking(undefined);
    expect(out.ok).toBe(false);
    if (!out.ok) {
      expectError(out, 401, 'unauthorized');
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(backend.upgrades.length).toBe(before);
  });

  it("the revocation was someone else's: the WebSocket opens", async () => {
    const out = await upgradeWhileRevoking(principal);
    expect(out.ok).toBe(true);
    if (out.ok) out.ws.terminate();
  });
});
