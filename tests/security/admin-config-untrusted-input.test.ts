import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';
import { retryOnPortRace } from '../helpers/stage.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const ROUTING = 'mappings:\n  - frontendHost: "*"\n    pathPrefix: /private\n    backend: http://127.0.0.1:9\n';

/**
 * What an admin (or a stolen admin token) can send as a configuration (catalogue #117, #119, #120): bounded in size
 * and nesting, refused field by field, and never able to change a default through an object's prototype.
 */
describe('untrusted configuration bodies', () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    gh = await retryOnPortRace(() =>
      startGatehouse({
        redisUrl: inject('redisUrl'),
        yaml: ROUTING,
        configSync: true,
        env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'u', OIDC_CLIENT_SECRET: 'unused', ADMIN_TOKEN },
      }),
    );
  });
  afterAll(async () => {
    await gh?.close();
  });
  const put = (body: string, type = 'application/yaml') =>
    fetch(`${gh.url}/admin/config`, {
      method: 'PUT',
      body,
      headers: { 'x-admin-token': ADMIN_TOKEN, 'content-type': type, 'if-match': '*' },
    });
  const stillServing = async () => {
    const res = await fetch(`${gh.url}/admin/config`, { headers: { 'x-admin-token': ADMIN_TOKEN } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { text: string }).text).toBe(ROUTING);
  };

  it('a document nested 10,000 deep is a config error, not a crash; the process keeps serving the old routing', async () => {
    await expectError(await put(`${'['.repeat(10_000)}${']'.repeat(10_000)}`), 400, 'config_invalid');
    await expectError(await put(`{"mappings":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, 'application/json'), 400, 'config_invalid');
    await stillServing();
  });

  it('a body over 1 MiB is refused before it is parsed', async () => {
    await expectError(await put(`# ${'x'.repeat(2 * 1024 * 1024)}\n${ROUTING}`), 400, 'bad_request');
    await stillServing();
  });

  it('a protected route still answers 401 after every refused body', async () => {
    await expectError(await fetch(`${gh.url}/api/private/x`), 401, 'unauthorized');
  });
});

describe('__proto__ in config.yml itself', () => {
  it('is an unknown field naming its path, never the prototype of a mapping (which made auth: none its default)', () => {
    const env = {
      NODE_ENV: 'test',
      APP_BASE_URL: 'http://127.0.0.1:8080',
      OIDC_ISSUER: 'http://127.0.0.1:9',
      OIDC_CLIENT_ID: 'x',
      GATEHOUSE_CONFIG: writeConfigFile(
        'mappings:\n  - frontendHost: "*"\n    pathPrefix: /private\n    backend: http://127.0.0.1:9\n    __proto__:\n      auth: none\n',
      ),
    };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.join('\n')).toMatch(/\/mappings\/0\/__proto__/);
  });
});
