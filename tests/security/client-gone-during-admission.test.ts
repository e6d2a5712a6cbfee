import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

/**
 * A client that resets its connection while admission awaits the session store (an unknown but well-formed
 * cookie on an `auth: optional` route costs a store read, no login needed) used to get its request forwarded
 * anyway: the response 'close' had fired already, so nothing aborted the exchange, and a response written to
 * nobody paused it for good, holding a backend connection and the pool's drain on reload and shutdown.
 */
describe('a client gone while admission awaits the session store', () => {
  let redis: RedisServer;
  let backend: Server;
  let served = 0;
  let gh: TestGatehouse;
  beforeAll(async () => {
    // Its own redis-server: this test pauses it.
    redis = await startRedis();
    backend = createServer((_req, res) => {
      served++;
      // More than socket buffers hold, so a write to a gone client would leave the exchange paused.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.alloc(4 * 1024 * 1024, 0x61));
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()));
    const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    gh = await startGatehouse({
      redisUrl: redis.url,
      yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${origin}"\n    auth: optional\n    timeoutMs: 2000\n`,
      env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused' },
    });
  });
  afterAll(async () => {
    await gh?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
    await redis?.stop();
  });

  it('is never forwarded, and reload (which waits for the old pools to drain) completes', async () => {
    const pause = connect(redis.port, '127.0.0.1');
    await new Promise<void>((resolve) => pause.once('connect', () => resolve()));
    pause.write('CLIENT PAUSE 600\r\n');
    await new Promise<void>((resolve) => pause.once('data', () => resolve()));
    for (let i = 0; i < 5; i++) {
      const s = connect(gh.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`GET /api/big HTTP/1.1\r\nHost: 127.0.0.1:${gh.port}\r\nCookie: ${gh.config.session.cookieName}=${'A'.repeat(43)}\r\n\r\n`);
      setTimeout(() => s.resetAndDestroy(), 100);
    }
    pause.destroy();
    // Past the pause and the route timeout: whatever was started has had every chance to end.
    await new Promise((r) => setTimeout(r, 2500));
    expect(served).toBe(0);
    const reloaded = await Promise.race([
      gh.app.reload(gh.config).then(() => 'done'),
      new Promise((r) => setTimeout(() => r('pending'), 3000)),
    ]);
    expect(reloaded).toBe('done');
  });
});
