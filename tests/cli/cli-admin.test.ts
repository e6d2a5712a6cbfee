import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startGatehouse, writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';
import { ROOT } from '../helpers/main-process.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';

const ADMIN_TOKEN = 'operator-token-0123456789abcdefghijklmnop';
const ROUTING = mappingsYaml([{ frontendHost: '*', pathPrefix: '/orders', backend: 'http://127.0.0.1:9511', auth: 'none' }]);
const CHANGED = mappingsYaml([{ frontendHost: '*', pathPrefix: '/orders', backend: 'http://127.0.0.1:9512', auth: 'none' }]);

/** `node src/main.ts ARGS` with `input` on its stdin (the answer to `config apply`'s question), to its exit. */
async function gatehouse(
  args: readonly string[],
  env: Record<string, string>,
  input = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdin.end(input);
  // Generous: a loaded CI machine takes seconds to start Node.
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(killer);
  return { code, stdout, stderr };
}

/** `config get`, `config apply FILE` and `sessions list --sub` against a running Gatehouse's admin API. */
// Each test runs the CLI a few times, a Node start each: seconds apiece on a loaded machine.
describe('operator config and session commands', { timeout: 120_000 }, () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    gh = await startGatehouse({
      redisUrl: inject('redisUrl'),
      yaml: ROUTING,
      configSync: true,
      env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'u', ADMIN_TOKEN },
    });
  });
  afterAll(async () => {
    await gh?.close();
  });
  const operator = (args: readonly string[], input = '') =>
    gatehouse(args, { GATEHOUSE_URL: gh.url, GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN }, input);
  const version = () => gh.app.configState?.current().version ?? -1;

  it('config get prints the version, who made it and the text; --json the server body', async () => {
    const run = await operator(['config', 'get']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^# version \d+: startup by file on .* at \d{4}-/);
    expect(run.stdout).toContain('backend: "http://127.0.0.1:9511"');
    const json = await operator(['config', 'get', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ version: version(), text: ROUTING });
  });

  it('config apply shows the difference and asks; anything but yes changes nothing', async () => {
    const before = version();
    const file = writeConfigFile(CHANGED);
    const run = await operator(['config', 'apply', file], 'n\n');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`--- running version ${before}`);
    expect(run.stdout).toContain('-     backend: "http://127.0.0.1:9511"\n+     backend: "http://127.0.0.1:9512"\n');
    expect(run.stdout).toContain(`apply ${file} over version ${before}? [y/N] `);
    expect(run.stdout).toMatch(/not applied\n$/);
    expect(version()).toBe(before);
    const silent = await operator(['config', 'apply', file]);
    expect(silent.stdout).toMatch(/not applied\n$/);
    expect(version()).toBe(before);
  });

  it('config apply with yes (asked or --yes) applies it on every replica; the same file again is no change', async () => {
    const before = version();
    const file = writeConfigFile(CHANGED);
    const asked = await operator(['config', 'apply', file], 'y\n');
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain(`applied: version ${before + 1} on every replica`);
    expect(readFileSync(gh.configPath, 'utf8')).toBe(CHANGED);
    expect(await operator(['config', 'apply', file, '--yes'])).toMatchObject({
      code: 0,
      stdout: `no change: ${file} is version ${before + 1}\n`,
    });
    const back = await operator(['config', 'apply', writeConfigFile(ROUTING), '--yes']);
    expect(back.code).toBe(0);
    expect(version()).toBe(before + 2);
  });

  it('config apply of an invalid file is refused with every problem (exit 4); an unreadable file is exit 2', async () => {
    const before = version();
    const bad = writeConfigFile(mappingsYaml([{ frontendHost: '*', backend: 'gopher://x', auth: 'sometimes' }]));
    const run = await operator(['config', 'apply', bad, '--yes']);
    expect(run.code).toBe(4);
    expect(run.stdout).toContain('refused: config_invalid (HTTP 400)');
    expect(run.stdout).toMatch(/ {2}- .*\/mappings\/0\/backend/);
    expect(run.stdout).toMatch(/ {2}- .*\/mappings\/0\/auth/);
    expect(version()).toBe(before);
    const missing = await operator(['config', 'apply', '/nonexistent/config.yml', '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read /nonexistent/config.yml: ENOENT');
  });

  it('sessions list --sub shows a table of the live sessions, --json the server body, never a token', async () => {
    const a = await gh.app.sessions.create({
      claims: { sub: 'cli-list' },
      tokens: { accessToken: 'secret-access-token' },
      client: { ip: '203.0.113.7', userAgent: 'Firefox/140' },
    });
    const run = await operator(['sessions', 'list', '--sub', 'cli-list']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^STORE KEY +CREATED +LAST SEEN +IP +USER AGENT\n/);
    expect(run.stdout).toContain(a.session.storeKey);
    expect(run.stdout).toContain('203.0.113.7');
    expect(run.stdout).toContain('Firefox/140');
    const json = await operator(['sessions', 'list', '--sub', 'cli-list', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ sub: 'cli-list', sessions: [{ storeKey: a.session.storeKey, ip: '203.0.113.7' }] });
    expect(json.stdout).not.toContain('secret-access-token');
    expect((await operator(['sessions', 'list', '--sub', 'nobody-here'])).stdout).toBe('no live sessions for nobody-here\n');
  });

  it.each([[['sessions', 'list']], [['config', 'apply']], [['config', 'get', '--yes']], [['health', '--sub', 'x']], [['config', 'frob']]])(
    'refuses %j with exit code 2',
    async (args) => {
      const run = await operator(args);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('usage: gatehouse');
    },
  );
});
