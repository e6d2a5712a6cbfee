import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';

describe('ACCESS_LOG chooses which /api requests get a log line', () => {
  let backend: Server;
  let yaml: string;
  // No login is needed on an auth: none mapping; the issuer only has to be syntactically valid.
  const noIdp = { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused' };
  const started: TestGatehouse[] = [];

  beforeAll(async () => {
    backend = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    yaml = `mappings:\n  - frontendHost: "127.0.0.1"\n    pathPrefix: "/open"\n    backend: "${url}"\n    auth: none\n`;
  });
  afterAll(async () => {
    for (const gh of started) await gh.close();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  async function linesFor(accessLog: string | undefined): Promise<Array<Record<string, unknown>>> {
    const gh = await startGatehouse({ yaml, env: { ...noIdp, ...(accessLog ? { ACCESS_LOG: accessLog } : {}) } });
    started.push(gh);
    expect((await fetch(`${gh.url}/api/open/x`)).status).toBe(200);
    const missing = await fetch(`${gh.url}/api/nowhere`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toBe('not_found');
    await new Promise((r) => setTimeout(r, 50));
    return gh.logs.filter((l) => l['msg'] === 'proxy');
  }

  it('all (the default) logs every request with its status', async () => {
    const lines = await linesFor(undefined);
    expect(lines.map((l) => l['status'])).toEqual([200, 404]);
    expect(lines[0]).toMatchObject({ method: 'GET', path: '/api/open/x', route: 'mappings[0]' });
  });

  it('errors logs only refused or failed requests', async () => {
    expect((await linesFor('errors')).map((l) => l['status'])).toEqual([404]);
  });

  it('off logs none', async () => {
    expect(await linesFor('off')).toEqual([]);
  });

  it('refuses an unknown value, naming the variable', async () => {
    await expect(startGatehouse({ yaml, env: { ...noIdp, ACCESS_LOG: 'sometimes' } })).rejects.toThrow(
      /env ACCESS_LOG: must be one of all, errors, off/,
    );
  });
});
