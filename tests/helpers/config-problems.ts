import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { ConfigError } from '../../src/errors.ts';

/** Where the configuration tests pretend config.yml lives, and how its messages name it. */
export const CONFIG_FILE = '/etc/gatehouse/config.yml';
export const CONFIG_SOURCE = `GATEHOUSE_CONFIG ${CONFIG_FILE}`;

/** The smallest production-like environment a configuration loads under (no dev IdP, no network). */
export const CONFIG_ENV: Readonly<Record<string, string>> = {
  NODE_ENV: 'test',
  APP_BASE_URL: 'https://app.example.com',
  OIDC_ISSUER: 'https://idp.example.com',
  OIDC_CLIENT_ID: 'gatehouse',
  GATEHOUSE_CONFIG: CONFIG_FILE,
};

/** loadConfig with `yaml` as config.yml, `files` beside it (by absolute path), and `env` over CONFIG_ENV. */
export function loadTestConfig(yaml: string, options: { env?: Record<string, string>; files?: Record<string, string> } = {}): Config {
  return loadConfig(
    { ...CONFIG_ENV, ...options.env },
    {
      readFile: (path) => {
        if (path === CONFIG_FILE) return yaml;
        const text = options.files?.[path];
        if (text === undefined) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
        return text;
      },
    },
  );
}

/** Every problem `attempt` reports as a ConfigError, in order; fails the test when the configuration is accepted. */
export function configProblems(attempt: () => unknown): readonly string[] {
  try {
    attempt();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the configuration was accepted');
}
