import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const named = (name: string): Promise<TestBackend> =>
  startBackend((_req, res) => {
    res.end(name);
    return true;
  });
const routingTo = (backend: string) => mappingsYaml([{ frontendHost: '*', backend, auth: 'none' }]);

/** A configuration change that Redis cannot version is no change: 503, and the routing and the file stay. */
describe('configuration changes while Redis is down', () => {
  const stage = useStage({
    ownRedis: true,
    backends: { a: () => named('A'), b: () => named('B') },
    yaml: ({ a }) => routingTo(a.url),
    gatehouse: { env: { ADMIN_TOKEN }, configSync: true },
  });
  const put = (text: string) =>
    fetch(`${stage.gh.url}/admin/config`, {
      method: 'PUT',
      body: text,
      headers: { 'x-admin-token': ADMIN_TOKEN, 'content-type': 'application/yaml', 'if-match': '*' },
    });
  const who = async () => (await fetch(`${stage.gh.url}/api/who`)).text();

  it('PUT answers 503 session_store_unavailable and changes nothing; once Redis is back it applies', async () => {
    const before = readFileSync(stage.gh.configPath, 'utf8');
    await stage.redisServer.stop();
    try {
      await expectError(await put(routingTo(stage.backends.b.url)), 503, 'session_store_unavailable');
      expect(await who()).toBe('A');
      expect(readFileSync(stage.gh.configPath, 'utf8')).toBe(before);
    } finally {
      await stage.redisServer.start();
    }
    let res = await put(routingTo(stage.backends.b.url));
    for (let i = 0; res.status === 503 && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await put(routingTo(stage.backends.b.url));
    }
    expect(res.status).toBe(200);
    expect(await who()).toBe('B');
  });
});
