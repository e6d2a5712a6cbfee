import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { startMain, type MainProcess } from '../helpers/main-process.ts';
import { freePort } from '../helpers/ports.ts';

/** What an operator sees while Gatehouse starts: what it waits for, then the routing it serves, in one line. */
describe('start-up lines', () => {
  let main: MainProcess | undefined;
  afterAll(async () => {
    const child = main?.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('says it is waiting for Redis (naming REDIS_URL), then logs a one-line routing summary', async () => {
    const [port, redisPort] = [await freePort(), await freePort()];
    main = startMain({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      APP_BASE_URL: `http://127.0.0.1:${port}`,
      OIDC_ISSUER: 'http://127.0.0.1:9',
      OIDC_CLIENT_ID: 'unused',
      REDIS_URL: `redis://:pw-not-logged@127.0.0.1:${redisPort}/0`,
      GATEHOUSE_CONFIG: writeConfigFile('mappings:\n  - frontendHost: "*"\n    pathPrefix: /orders\n    backend: http://127.0.0.1:9511\n'),
      LOG_LEVEL: 'info',
    });
    const deadline = Date.now() + 20_000;
    while (!main.output().includes('"msg":"routing: 1 mapping(s)"')) {
      if (main.child.exitCode !== null || Date.now() > deadline) throw new Error(`no routing line:\n${main.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const lines = main
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const waiting = lines.findIndex((l) => l['msg'] === `waiting for Redis at 127.0.0.1:${redisPort} (REDIS_URL)…`);
    const routing = lines.findIndex((l) => l['msg'] === 'routing: 1 mapping(s)');
    expect(waiting).toBeGreaterThan(-1);
    expect(routing).toBeGreaterThan(waiting);
    expect(lines[routing]).toMatchObject({
      level: 'info',
      routes: ['#0  * /api/orders → http://127.0.0.1:9511 (auth required, websocket, timeout 30000 ms)'],
    });
    expect(main.output()).not.toContain('pw-not-logged');
  });
});
