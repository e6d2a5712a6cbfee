import { createOidcClient } from '../auth/oidc.ts';
import { loadConfig, wantsDevSetup } from '../config/load.ts';
import { printableUrl } from '../config/validate.ts';
import { routingLines } from '../config/routing-summary.ts';
import type { Config } from '../config/types.ts';
import { ConfigError } from '../errors.ts';
import { createLogger } from '../observability/logger.ts';
import { compilePolicy } from '../policy/runtime.ts';
import { createRedisStore } from '../store/redis.ts';

export interface CheckOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly configPath: string | undefined;
  readonly connect: boolean;
  /**
   * In development mode, what the embedded dev setup would add to the environment at start-up (its issuer and
   * client), so the check sees what `gatehouse start` would. Passed in by main.ts, the only importer of dev/.
   */
  readonly devEnv?: (baseUrl: string) => Record<string, string>;
  readonly out: (text: string) => void;
}

/** Exit codes of `gatehouse check` (USAGE in command.ts lists them). */
export const CHECK_EXIT = { ok: 0, invalid: 1, unreachable: 3 } as const;

/**
 * `gatehouse check`: the environment and config.yml validated exactly as start-up does (loadConfig, the same
 * schema and rules), the routing it would serve, and with `connect` whether Redis and the IdP answer.
 * Nothing is started and nothing is written.
 */
export async function runCheck(options: CheckOptions): Promise<number> {
  const env: Record<string, string | undefined> = { ...options.env };
  if (options.configPath !== undefined) env['GATEHOUSE_CONFIG'] = options.configPath;
  const dev = wantsDevSetup(env);
  if (dev && options.devEnv) {
    const baseUrl = (env['APP_BASE_URL'] ?? `http://localhost:${env['PORT'] ?? '8080'}`).replace(/\/$/, '');
    Object.assign(env, options.devEnv(baseUrl));
  }
  let config: Config;
  try {
    config = loadConfig(env, { devMode: dev });
    // Start-up compiles the policy too (route rules, schemas through ajv): what it refuses, the check refuses.
    compilePolicy(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    options.out(`gatehouse check: ${err.problems.length} problem(s):\n${err.problems.map((p) => `  - ${p}\n`).join('')}`);
    return CHECK_EXIT.invalid;
  }
  options.out(describe(config, env['GATEHOUSE_CONFIG'] ?? './config.yml', dev));
  if (!options.connect) return CHECK_EXIT.ok;
  const reached = await connect(config, dev, options.out);
  return reached ? CHECK_EXIT.ok : CHECK_EXIT.unreachable;
}

function describe(config: Config, configPath: string, dev: boolean): string {
  const { server, oidc, redis, routing } = config;
  const lines = [
    'gatehouse check: configuration OK',
    `  mode      ${dev ? 'development (the embedded dev IdP and demo backend start with `gatehouse start`)' : 'production rules'}`,
    `  config    ${configPath}`,
    `  listen    ${server.host}:${server.port}, base URL ${server.baseUrl}`,
    `  IdP       ${oidc.issuer} (client ${oidc.clientId})`,
    `  store     ${redis.url ? printableUrl(redis.url) : 'in memory (this process only)'}`,
    `  SPA       ${server.publicDir ?? 'none (nothing is served at /)'}`,
    '  routing   (longest path prefix first; at equal length a mapping naming the port wins)',
    ...routingLines(routing).map((line) => `    ${line}`),
  ];
  return `${lines.join('\n')}\n`;
}

async function connect(config: Config, dev: boolean, out: (text: string) => void): Promise<boolean> {
  const log = createLogger({ level: 'silent' });
  let ok = true;
  if (config.redis.url) {
    const store = createRedisStore({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, log, commandTimeoutMs: 2000 });
    try {
      if (!(await store.ready(3000))) throw new Error('no connection within 3 s');
      await store.ping();
      out(`  redis     reachable (${printableUrl(config.redis.url)})\n`);
    } catch (err) {
      ok = false;
      out(`  redis     NOT reachable (${printableUrl(config.redis.url)}): ${causeOf(err)}\n`);
    } finally {
      await store.close();
    }
  } else {
    out('  redis     not configured (in-memory store)\n');
  }
  if (dev) {
    out('  IdP       not reached: in development mode it runs inside `gatehouse start`\n');
    return ok;
  }
  try {
    await createOidcClient(config.oidc, log).discoverOnce();
    out(`  IdP       discovery document loaded (${config.oidc.issuer})\n`);
  } catch (err) {
    ok = false;
    out(`  IdP       NOT reachable (${config.oidc.issuer}): ${causeOf(err)}\n`);
  }
  return ok;
}

/** A failure in a line: the library's code where it has one (openid-client, undici), then its message. */
function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}
