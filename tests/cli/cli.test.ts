import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startGatehouse, writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { ROOT } from '../helpers/main-process.ts';
import { freePort } from '../helpers/ports.ts';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `node src/main.ts ARGS` (what the `gatehouse` bin runs) with only the environment given, to its exit. */
async function gatehouse(args: readonly string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, ['src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  return { code, stdout, stderr };
}

const ROUTING =
  'mappings:\n  - frontendHost: app.example.com\n    pathPrefix: /orders\n    backend: http://127.0.0.1:9511\n    auth: optional\n';
const base = (yaml = ROUTING): Record<string, string> => ({
  NODE_ENV: 'production',
  APP_BASE_URL: 'https://app.example.com',
  OIDC_ISSUER: 'http://127.0.0.1:9/unused',
  OIDC_CLIENT_ID: 'gatehouse',
  REDIS_URL: 'redis://:s3cret@127.0.0.1:9/0',
  GATEHOUSE_CONFIG: writeConfigFile(yaml),
});

describe('the command line', () => {
  it('refuses an unknown flag with the usage and exit code 2, instead of starting the server', async () => {
    const run = await gatehouse(['--check'], base());
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Unknown option '--check'");
    expect(run.stderr).toContain('usage: gatehouse');
  });

  it.each([[['frobnicate']], [['start', '--connect']], [['check', 'extra']]])('refuses %j with exit code 2', async (args) => {
    const run = await gatehouse(args, base());
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('usage: gatehouse');
  });

  it('--version prints the package version; --help the usage', async () => {
    const { version } = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string };
    expect(await gatehouse(['--version'], {})).toEqual({ code: 0, stdout: `gatehouse ${version}\n`, stderr: '' });
    const help = await gatehouse(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('gatehouse check [--config FILE] [--connect]');
  });
});

describe('gatehouse check', () => {
  it('accepts a valid configuration, prints the routing it would serve and hides the Redis password', async () => {
    const run = await gatehouse(['check'], base());
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('gatehouse check: configuration OK');
    expect(run.stdout).toContain('#0  app.example.com /api/orders → http://127.0.0.1:9511 (auth optional, websocket, timeout 30000 ms)');
    expect(run.stdout).toContain('redis://:***@127.0.0.1:9/0');
    expect(run.stdout).not.toContain('s3cret');
    const inQuery = await gatehouse(['check'], { ...base(), REDIS_URL: 'redis://127.0.0.1:9/0?password=hunter2' });
    expect(inQuery.code).toBe(0);
    expect(inQuery.stdout).toContain('store     redis://127.0.0.1:9/0?…');
    expect(inQuery.stdout).not.toContain('hunter2');
  });

  it('reports every problem, naming its source and field, with exit code 1 (--config overrides GATEHOUSE_CONFIG)', async () => {
    const broken = writeConfigFile('mappings:\n  - frontendHost: app.example.com\n    bakend: http://127.0.0.1:9511\n');
    const run = await gatehouse(['check', '--config', broken], { ...base(), APP_BASE_URL: '' });
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('env APP_BASE_URL: is required');
    expect(run.stdout).toContain(`GATEHOUSE_CONFIG ${broken} /mappings/0/bakend: `);
    expect(run.stdout).toContain(`GATEHOUSE_CONFIG ${broken} /mappings/0/backend: `);
  });

  it('refuses a schema ajv cannot compile, as start-up would (exit code 1, naming the entry)', async () => {
    const bad = writeConfigFile(`${ROUTING}schemas:\n  - method: POST\n    path: /orders\n    body: { type: string, pattern: "(a+)+$" }\n`);
    const run = await gatehouse(['check', '--config', bad], base());
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('config.yml /schemas/0/body: pattern "(a+)+$" repeats a group');
  });

  describe('--connect', () => {
    let idp: TestIdp;
    beforeAll(async () => {
      idp = await startIdp({ gatehouseBaseUrls: ['https://app.example.com'] });
    });
    afterAll(async () => {
      await idp?.close();
    });

    it('reaches Redis and the IdP discovery document and says so (exit 0)', async () => {
      const run = await gatehouse(['check', '--connect'], {
        ...base(),
        REDIS_URL: inject('redisUrl'),
        OIDC_ISSUER: idp.issuer,
        OIDC_CLIENT_ID: idp.clientId,
      });
      expect(run.stdout).toContain('redis     reachable');
      expect(run.stdout).toContain(`IdP       discovery document loaded (${idp.issuer})`);
      expect(run.code).toBe(0);
    });

    it('names what it could not reach, with exit code 3', async () => {
      const closed = await freePort();
      const run = await gatehouse(['check', '--connect'], {
        ...base(),
        REDIS_URL: `redis://127.0.0.1:${closed}/0`,
        OIDC_ISSUER: idp.issuer,
        OIDC_CLIENT_ID: idp.clientId,
      });
      expect(run.stdout).toContain(`redis     NOT reachable (redis://127.0.0.1:${closed}/0)`);
      expect(run.stdout).toContain('IdP       discovery document loaded');
      expect(run.code).toBe(3);
    });

    it('names an IdP without a discovery document too (exit 3)', async () => {
      const closed = await freePort();
      const run = await gatehouse(['check', '--connect'], {
        ...base(),
        REDIS_URL: inject('redisUrl'),
        OIDC_ISSUER: `http://127.0.0.1:${closed}/idp`,
      });
      expect(run.stdout).toContain('redis     reachable');
      expect(run.stdout).toContain(`IdP       NOT reachable (http://127.0.0.1:${closed}/idp): `);
      expect(run.code).toBe(3);
    });
  });
});

describe('operator commands against a running Gatehouse', () => {
  const ADMIN_TOKEN = 'operator-token-0123456789abcdefghijklmnop';
  let gh: TestGatehouse;
  beforeAll(async () => {
    // An issuer nothing answers on: the IdP check fails, so /readyz is 503 while the admin API works.
    gh = await startGatehouse({
      redisUrl: inject('redisUrl'),
      env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'u', ADMIN_TOKEN },
    });
  });
  afterAll(async () => {
    await gh?.close();
  });
  const operator = (args: readonly string[], env: Record<string, string> = {}) =>
    gatehouse(args, { GATEHOUSE_URL: gh.url, GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN, ...env });

  it('health shows each check and exits 4 while not ready; --json gives the server body', async () => {
    const run = await operator(['health']);
    expect(run.code).toBe(4);
    expect(run.stdout).toMatch(/^not ready\n {2}store {5}ok\n {2}idp {7}fail\n$/);
    const json = await operator(['health', '--json']);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: 'not_ready', failed: ['idp'] });
  });

  it('sessions revoke ends the session everywhere (exit 0), users revoke ends every session of the user', async () => {
    const a = await gh.app.sessions.create({ claims: { sub: 'cli-user' }, tokens: { accessToken: 'a' } });
    const b = await gh.app.sessions.create({ claims: { sub: 'cli-user' }, tokens: { accessToken: 'b' } });
    const one = await operator(['sessions', 'revoke', a.session.storeKey]);
    expect(one).toMatchObject({ code: 0, stdout: `session ${a.session.storeKey} revoked on every replica\n` });
    expect(await gh.app.sessions.load(a.secret, { fresh: true })).toBeUndefined();
    expect(await gh.app.sessions.load(b.secret, { fresh: true })).toBeDefined();
    const all = await operator(['users', 'revoke', 'cli-user', '--json']);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout)).toMatchObject({ revoked: 'user', sub: 'cli-user', sessions: 2 });
    expect(await gh.app.sessions.load(b.secret, { fresh: true })).toBeUndefined();
  });

  it('a refused call says why with the stable code (exit 4); the token comes from the environment only', async () => {
    const wrong = await operator(['sessions', 'revoke', 'K'.repeat(43)], { GATEHOUSE_ADMIN_TOKEN: 'not-the-token' });
    expect(wrong.code).toBe(4);
    expect(wrong.stdout).toBe(
      'refused: admin_unauthorized (HTTP 401): Admin credentials are required: an X-Admin-Token header with ADMIN_TOKEN, or an operator session.\n',
    );
    const malformed = await operator(['sessions', 'revoke', 'not-a-store-key']);
    expect(malformed.code).toBe(4);
    expect(malformed.stdout).toContain('refused: bad_request (HTTP 400)');
    const missing = await gatehouse(['users', 'revoke', 'x'], { GATEHOUSE_URL: gh.url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('GATEHOUSE_ADMIN_TOKEN is not set');
    expect((await gatehouse(['users', 'revoke', 'x', '--token', 't'], {})).code).toBe(2);
  });

  it('a Gatehouse that does not answer is exit 3, naming the URL', async () => {
    const closed = await freePort();
    const run = await operator(['health', '--url', `http://127.0.0.1:${closed}`]);
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`cannot reach http://127.0.0.1:${closed}: ECONNREFUSED`);
  });
});
