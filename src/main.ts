#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createApp } from './app.ts';
import { runCheck } from './cli/check.ts';
import { parseCommand, USAGE, UsageError, type Command } from './cli/command.ts';
import { runOperate } from './cli/operate.ts';
import { loadConfig, loadConfigText, wantsDevSetup } from './config/load.ts';
import { routingLines } from './config/routing-summary.ts';
import { ConfigError, GatehouseError } from './errors.ts';
import { createLogger } from './observability/logger.ts';
import { createTracing } from './observability/tracing.ts';
import type { DevSetup } from './dev/setup.ts';

/** env → config → app → listen → signals. */
async function main(configPath: string | undefined): Promise<void> {
  const env: Record<string, string | undefined> = { ...process.env };
  if (configPath !== undefined) env['GATEHOUSE_CONFIG'] = configPath;
  const log = createLogger({
    level: env['LOG_LEVEL'] && /^(fatal|error|warn|info|debug|trace|silent)$/.test(env['LOG_LEVEL']) ? env['LOG_LEVEL'] : 'info',
  });
  const dev = wantsDevSetup(env);
  let devSetup: DevSetup | undefined;
  if (dev) {
    const port = env['PORT'] ?? '8080';
    const baseUrl = (env['APP_BASE_URL'] ?? `http://localhost:${port}`).replace(/\/$/, '');
    const { startDevSetup } = await import('./dev/setup.ts');
    devSetup = await startDevSetup({ baseUrl, backendPort: Number(env['DEV_BACKEND_PORT'] ?? 4070), log });
    Object.assign(env, devSetup.env);
  }
  const filePath = env['GATEHOUSE_CONFIG'] || './config.yml';
  // Read once: the text validated is the text the cluster's version history records. An unreadable file is left
  // to loadConfig, which names it.
  let configText: string | undefined;
  try {
    configText = readFileSync(filePath, 'utf8');
  } catch {
    configText = undefined;
  }
  const text = configText;
  const config = text === undefined ? loadConfig(env, { devMode: dev }) : loadConfigText(env, text, filePath, { devMode: dev });
  // The OpenTelemetry SDK is imported only when OTEL_* asks for traces.
  const tracing = await createTracing(env, log);
  const app = await createApp(config, {
    log,
    tracing,
    ...(devSetup ? { mounts: devSetup.mounts } : {}),
    configFile: { path: filePath, text: text ?? '', load: (text) => loadConfigText(env, text, filePath, { devMode: dev }) },
  });
  const address = await app.listen(config.server.port, config.server.host);
  const metricsAt = app.metricsAddress();
  if (metricsAt) log.info({ address: `${metricsAt.address}:${metricsAt.port}` }, 'metrics listening (GET /metrics)');

  if (dev) {
    const line = '='.repeat(72);
    process.stdout.write(
      `\n${line}\n  Gatehouse is running in DEVELOPMENT MODE ` +
        `(embedded dev IdP, demo backend${config.redis.url ? '' : ', in-memory sessions'}).\n` +
        `  Open ${config.server.baseUrl}/ and log in with any username and password.\n` +
        `  Never use this mode in production: set OIDC_ISSUER, REDIS_URL and NODE_ENV=production.\n${line}\n\n`,
    );
  }
  log.info({ address: `${address.address}:${address.port}`, baseUrl: config.server.baseUrl, devMode: dev }, 'gatehouse listening');
  log.info({ routes: routingLines(config.routing) }, `routing: ${config.routing.mappings.length} mapping(s)`);

  let stopping = false;
  let drainNow: (() => void) | undefined;
  // SIGTERM is the orchestrator's: not ready at once, still serving while the load balancer catches up, then the
  // drain. SIGINT is a person at a terminal: drain at once. A second signal during the delay cuts it short.
  const stop = (signal: string) => {
    if (stopping) {
      drainNow?.();
      return;
    }
    stopping = true;
    const delayMs = signal === 'SIGTERM' ? config.server.shutdownDelayMs : 0;
    log.info({ signal, delayMs }, 'shutting down');
    app.beginShutdown();
    void new Promise<void>((resolve) => {
      drainNow = resolve;
      setTimeout(resolve, delayMs);
    })
      .then(() => {
        log.info('draining');
        return app.close();
      })
      .then(() => devSetup?.close())
      .then(() => {
        log.info('stopped');
        log.flush();
        setTimeout(() => process.exit(0), 50).unref();
      });
  };
  // SIGHUP re-reads config.yml, as a file edit does: a valid change becomes the cluster's next version; a file with
  // problems changes nothing (each problem is logged, naming its field).
  process.on('SIGHUP', () => {
    if (stopping) return;
    app.configState?.reloadFile({ kind: 'file', by: 'SIGHUP' }).then(
      ({ changed }) => {
        if (!changed) log.info('configuration unchanged');
      },
      (err: unknown) => {
        const problems = err instanceof GatehouseError ? err.details?.['problems'] : undefined;
        log.error({ problems: problems ?? [String(err)] }, 'configuration not reloaded: the running one stays');
      },
    );
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** The command line first (an unknown flag never starts a server), then the command. */
async function run(): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`gatehouse: ${err.message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (command.kind === 'help') process.stdout.write(USAGE);
  else if (command.kind === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`gatehouse ${pkg.version}\n`);
  } else if (command.kind === 'check') {
    const env = { ...process.env };
    const devEnv = wantsDevSetup(env) ? (await import('./dev/setup.ts')).devEnv : undefined;
    const code = await runCheck({
      env,
      configPath: command.configPath,
      connect: command.connect,
      ...(devEnv ? { devEnv } : {}),
      out: (text) => process.stdout.write(text),
    });
    // A client that never connected may keep a reconnect timer for a while: the verdict is out, so is the process.
    process.exit(code);
  } else if (command.kind === 'operate') {
    process.exitCode = await runOperate({
      action: command.action,
      url: command.url,
      json: command.json,
      env: process.env,
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      readFile: (path) => readFileSync(path, 'utf8'),
      ask: (question) =>
        new Promise<string>((resolve) => {
          process.stdout.write(question);
          // No terminal, or stdin closed before an answer: no. A terminal echoes the answer's newline; a pipe does not.
          const rl = createInterface({ input: process.stdin });
          let answer = '';
          rl.once('line', (line) => {
            answer = line;
            rl.close();
          });
          rl.once('close', () => {
            if (!process.stdin.isTTY) process.stdout.write('\n');
            resolve(answer);
          });
        }),
    });
  } else await main(command.configPath);
}

run().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`gatehouse: ${err.message}\n`);
  } else {
    process.stderr.write(`gatehouse: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
});
