import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig, loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Tracing } from '../../src/observability/tracing.ts';
import type { Store } from '../../src/store/store.ts';
import type { TestIdp } from './idp.ts';
import { freePort } from './ports.ts';

export interface TestGatehouse {
  readonly url: string;
  readonly port: number;
  readonly app: App;
  readonly config: Config;
  /** The config.yml it was started with (GATEHOUSE_CONFIG). */
  readonly configPath: string;
  /** Every log line written so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Writes config.yml text to a fresh temp file and returns its path. */
export function writeConfigFile(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  const path = join(dir, 'config.yml');
  writeFileSync(path, yaml);
  return path;
}

/** Reserves the port first so APP_BASE_URL (and the IdP's redirect URI) can name it. */
export async function reservePort(): Promise<{ port: number; url: string }> {
  const port = await freePort();
  return { port, url: `http://127.0.0.1:${port}` };
}

/**
 * The real app (createApp) on 127.0.0.1 with a real IdP and Redis. Each instance gets its own
 * REDIS_KEY_PREFIX unless one is given (two instances sharing a prefix act as replicas).
 */
export async function startGatehouse(options: {
  idp?: TestIdp;
  clientId?: string;
  redisUrl?: string;
  port?: number;
  yaml?: string;
  env?: Record<string, string>;
  store?: Store;
  now?: () => number;
  /** OpenTelemetry spans (observability/tracing.ts createTracing); none unless given. */
  tracing?: Tracing;
  /** config.yml as shared, versioned state (the admin config API, file watch, replicas following each other), as main.ts runs it. */
  configSync?: boolean;
}): Promise<TestGatehouse> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const logs: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    APP_BASE_URL: url,
    LOG_LEVEL: 'info',
    REDIS_KEY_PREFIX: `t${randomBytes(4).toString('hex')}:`,
    OIDC_PROMPT: 'consent',
    GATEHOUSE_CONFIG: writeConfigFile(options.yaml ?? 'mappings: []\n'),
    ...(options.idp
      ? {
          OIDC_ISSUER: options.idp.issuer,
          OIDC_CLIENT_ID: options.clientId ?? options.idp.clientId,
          OIDC_CLIENT_SECRET: options.idp.clientSecret,
        }
      : {}),
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    ...options.env,
  };
  const config = loadConfig(env);
  const log = createLogger({ level: env['LOG_LEVEL'] ?? 'info', destination });
  const app = await createApp(config, {
    log,
    ...(options.store ? { store: options.store } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.tracing ? { tracing: options.tracing } : {}),
    ...(options.configSync
      ? {
          configFile: {
            path: env['GATEHOUSE_CONFIG'] as string,
            text: options.yaml ?? 'mappings: []\n',
            load: (text: string) => loadConfigText(env, text, env['GATEHOUSE_CONFIG'] as string),
          },
        }
      : {}),
  });
  await app.listen(port, '127.0.0.1');
  if (options.idp) await app.oidc.whenReady(10_000);
  return { url, port, app, config, configPath: env['GATEHOUSE_CONFIG'] as string, logs, close: () => app.close() };
}
