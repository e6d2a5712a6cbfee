import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeConfigFile } from '../helpers/gatehouse.ts';
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
  });

  it('reports every problem, naming its source and field, with exit code 1 (--config overrides GATEHOUSE_CONFIG)', async () => {
    const broken = writeConfigFile('mappings:\n  - frontendHost: app.example.com\n    bakend: http://127.0.0.1:9511\n');
    const run = await gatehouse(['check', '--config', broken], { ...base(), APP_BASE_URL: '' });
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('env APP_BASE_URL: is required');
    expect(run.stdout).toContain(`GATEHOUSE_CONFIG ${broken} /mappings/0/bakend: `);
    expect(run.stdout).toContain(`GATEHOUSE_CONFIG ${broken} /mappings/0/backend: `);
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
