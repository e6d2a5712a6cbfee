import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { startMain, type MainProcess } from '../helpers/main-process.ts';
import { freePort } from '../helpers/ports.ts';

interface Backend {
  readonly url: string;
  readonly openSockets: () => number;
  close(): Promise<void>;
}

/** A backend that answers with its name, after `?delay=ms`, and counts its open connections. */
async function startNamed(name: string): Promise<Backend> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    setTimeout(() => res.end(`${name}${delay ? ' after a wait' : ''}`), delay);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    openSockets: () => sockets.size,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const mappingTo = (backend: string, auth = 'none') => `mappings:\n  - frontendHost: "*"\n    backend: "${backend}"\n    auth: ${auth}\n`;

/** `node src/main.ts` as production runs it, and SIGHUP: config.yml re-read, pools swapped without a restart. */
describe('SIGHUP reloads config.yml', () => {
  let a: Backend;
  let b: Backend;
  let main: MainProcess;
  let child: MainProcess['child'];
  const output = () => main.output();
  let url: string;
  let configPath: string;

  beforeAll(async () => {
    a = await startNamed('A');
    b = await startNamed('B');
    configPath = writeConfigFile(mappingTo(a.url));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    main = startMain({
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      APP_BASE_URL: url,
      OIDC_ISSUER: 'http://127.0.0.1:9',
      OIDC_CLIENT_ID: 'unused',
      OIDC_CLIENT_SECRET: 'unused',
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: `reload-${port}:`,
      GATEHOUSE_CONFIG: configPath,
      LOG_LEVEL: 'info',
      SHUTDOWN_DELAY_SECONDS: '0',
    });
    child = main.child;
    const deadline = Date.now() + 20_000;
    while (
      (await fetch(`${url}/healthz`).then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gatehouse did not start:\n${output()}`);
      await sleep(100);
    }
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    await Promise.all([a?.close(), b?.close()]);
  });

  const who = async () => (await fetch(`${url}/api/who`)).text();
  const waitFor = async (check: () => boolean | Promise<boolean>, ms = 5000) => {
    const until = Date.now() + ms;
    while (!(await check()) && Date.now() < until) await sleep(50);
    return check();
  };

  it('new requests take the new mappings, a request under way finishes on the old backend, whose connections then close', async () => {
    expect(await who()).toBe('A');
    const underWay = fetch(`${url}/api/slow?delay=800`).then((r) => r.text());
    await sleep(150);

    writeFileSync(configPath, mappingTo(b.url));
    child.kill('SIGHUP');
    expect(await waitFor(async () => (await who()) === 'B')).toBe(true);
    // Log lines leave in batches (up to 200 ms): wait for them rather than read at once.
    expect(await waitFor(() => output().includes('configuration reloaded'))).toBe(true);

    expect(await underWay).toBe('A after a wait');
    // At once, not after the 4 s idle timeout: the old pool keeps no connection once its last request is done.
    expect(await waitFor(() => a.openSockets() === 0, 1500)).toBe(true);
    expect(await waitFor(() => output().includes('previous backend connections closed'))).toBe(true);
  });

  it('a file with problems changes nothing: each problem is logged with its field, and the running mappings stay', async () => {
    writeFileSync(configPath, mappingTo(a.url, 'sometimes'));
    child.kill('SIGHUP');
    expect(await waitFor(() => output().includes('configuration not reloaded'))).toBe(true);
    expect(output()).toMatch(/\/mappings\/0\/auth: must be one of required, optional, none/);
    expect(await who()).toBe('B');
    const res = await fetch(`${url}/api/who`);
    expect(res.status).toBe(200);
  });

  it('a route rule that does not compile (policy/, after the schema) changes nothing either', async () => {
    const before = output().split('configuration not reloaded').length;
    writeFileSync(configPath, `${mappingTo(a.url)}    rules:\n      - match: { path: "/admin/**" }\n`);
    child.kill('SIGHUP');
    expect(await waitFor(() => output().split('configuration not reloaded').length > before)).toBe(true);
    expect(output()).toContain('mappings[0].rules[0].match.path: \\"/admin/**\\"');
    expect(await who()).toBe('B');
  });

  it('a schema only compiling refuses changes nothing either: the process keeps serving the running mappings', async () => {
    const before = (output().match(/configuration not reloaded/g) ?? []).length;
    writeFileSync(configPath, `${mappingTo(a.url)}schemas:\n  - method: GET\n    path: /who\n    query: { type: object, propertys: {} }\n`);
    child.kill('SIGHUP');
    expect(await waitFor(() => (output().match(/configuration not reloaded/g) ?? []).length > before)).toBe(true);
    expect(output()).toContain('/schemas/0/query: strict mode: unknown keyword: \\"propertys\\"');
    expect(await who()).toBe('B');
  });

  it('still stops cleanly on SIGTERM', async () => {
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
