/**
 * `npm run bench`: Gatehouse under load next to its baselines, every server in its own process on 127.0.0.1.
 *
 *   npm run bench                      full run (6 s warm-up, then 8 rounds × 3 s per setup, about 4 minutes)
 *   npm run bench -- --quick           smoke run (1 round × 1 s, small probes)
 *   npm run bench -- --rounds 3 --duration 4 --with-hpm --profile
 *
 * See docs/performance.md for what each setup is and the latest numbers.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type WebSocket from 'ws';
import { Browser } from '../tests/helpers/browser.ts';
import { startIdp, type TestIdp } from '../tests/helpers/idp.ts';
import { freePort } from '../tests/helpers/ports.ts';
import { nginxArgs, writeBackendConf, writeProxyConf } from './lib/nginx.ts';
import { openMany, sseCompare, wsCompare } from './lib/probes.ts';
import { cpuSeconds, createProcRegistry, findExecutable, openFileLimit, rssKb, tailOf, waitForPort, type Proc } from './lib/procs.ts';
import { inspectorUrl, profileWhile } from './lib/inspector.ts';
import { formatProfiles, summarizeProfile, type ProfiledRun } from './lib/profile.ts';
import { fmtMs, median, table } from './lib/stats.ts';
import { autocannonPath, runAutocannon } from './lib/autocannon.ts';
import { runWrk, type LoadOptions, type WrkResult } from './lib/wrk.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SERVERS = join(ROOT, 'bench', 'servers');
const ORPHAN_GUARD = join(SERVERS, 'orphan-guard.ts');
const SUPERVISE = join(SERVERS, 'supervise.ts');

const TARGET_THROUGHPUT = 0.9;
const TARGET_P99 = 1.5;
/** Metrics on (METRICS_PORT set) against the same Gatehouse without: what counting every request may cost (issue 14). */
const TARGET_METRICS = 0.95;
/** POST with a 1 KB JSON body checked by a schema, against the bare forwarder doing the same POST (issue 16). */
const TARGET_SCHEMA_THROUGHPUT = 0.8;
/** The measured GET with every admission stage configured (CORS, CSRF, rate limit, route rule) against the bare forwarder (issue 16). */
const TARGET_POLICY_THROUGHPUT = 0.9;
/** Setups whose ratios the targets are about: run back to back in each round. */
const PAIRED = new Set([
  'bare',
  'gatehouse',
  'gatehouse-ratelimit',
  'gatehouse-warn',
  'candidate',
  'bare-dispatch',
  'bare-identity',
  'bare-post',
  'gatehouse-post',
  'gatehouse-schema',
  'candidate-schema',
  'candidate-policy',
  'gatehouse-metrics',
  'gatehouse-policy',
]);

/**
 * The full-policy setup: its own mapping (so the other setups keep their configuration), an origin it allows,
 * and the CSRF header a cross-origin SPA would send with every call.
 */
const POLICY_PREFIX = '/policy';
const POLICY_ORIGIN = 'https://spa.bench.test';
const POLICY_USER = 'alice';

/** The schema setup: a realistic item-creation schema and a 1 KB body that passes it. */
const SCHEMA_PATH = '/bench-json';
const BENCH_SCHEMA = {
  type: 'object',
  required: ['id', 'title', 'tags', 'lines'],
  additionalProperties: false,
  properties: {
    id: { type: 'integer', minimum: 1 },
    title: { type: 'string', minLength: 1, maxLength: 200 },
    status: { enum: ['open', 'done'] },
    tags: { type: 'array', maxItems: 20, items: { type: 'string', pattern: '^[a-z0-9-]+$', maxLength: 40 } },
    lines: {
      type: 'array',
      maxItems: 50,
      items: {
        type: 'object',
        required: ['sku', 'qty'],
        additionalProperties: false,
        properties: {
          sku: { type: 'string', maxLength: 32 },
          qty: { type: 'integer', minimum: 1 },
          note: { type: 'string', maxLength: 500 },
        },
      },
    },
  },
};
const BENCH_BODY = (() => {
  const body = {
    id: 42,
    title: 'Quarterly restock for the north warehouse',
    status: 'open',
    tags: ['restock', 'north', 'q3', 'priority-2'],
    lines: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1, note: `line ${i} note text` })),
  };
  const text = JSON.stringify(body);
  // Padded to 1 KB with the last line's note, so the measured body is the size the issue names.
  const pad = 1024 - text.length;
  if (pad < 0) throw new Error(`bench body is ${text.length} bytes, over 1 KB`);
  body.lines[11]!.note += 'x'.repeat(pad);
  return JSON.stringify(body);
})();

// ---------------------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string', default: '32' },
    'with-hpm': { type: 'boolean', default: false },
    'with-dispatch': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    'profile-seconds': { type: 'string' },
    'profile-levels': { type: 'string', default: 'info,warn' },
    'ws-count': { type: 'string' },
    json: { type: 'string' },
    candidate: { type: 'string' },
    'candidate-env': { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
    hold: { type: 'string' },
    client: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(`usage: npm run bench -- [options]
  --quick               1 round × 1 s per setup and small probes (smoke test)
  --rounds N            measured rounds per setup (default 8; quick 1)
  --duration S          seconds per load run (default 3; quick 1)
  --warmup S            seconds of the warm-up run per setup (default 6; quick 1)
  --connections N       connections of the load client (default 32; wrk with one thread)
  --with-hpm            add the Express 5 + http-proxy-middleware baseline (needs the devDependency)
  --with-dispatch       add a bare forwarder using a raw undici dispatch handler (Gatehouse's before its own client), and
                        the same forwarder sending the headers Gatehouse adds upstream (token, x-user-*, ...)
  --profile             CPU-profile Gatehouse under load and print its hot spots (automatic when a target is missed in a full run)
  --no-profile          never profile
  --profile-seconds S   load while profiling (default 5)
  --profile-levels L    LOG_LEVELs to profile, comma-separated (default info,warn)
  --ws-count N          idle WebSockets for the memory probe (default 10000; quick 500)
  --json PATH           also write the results as JSON
  --candidate DIR       also measure DIR/src/main.ts (a copy or worktree holding a proposed src/ change), at info
  --candidate-env K=V   extra environment for the candidate (repeatable); without --candidate it measures this
                        tree with that setting, e.g. --candidate-env ACCESS_LOG=off
  --keep                keep the temp directory (configs, logs, profiles)
  --client C            load client: wrk (default when installed) or autocannon (the fallback; its numbers
                        compare within a run, not with wrk runs)
  --hold S              after start-up, print every setup's URL, pid and load command, keep them up S seconds for
                        your own tools (perf, strace, wrk), then stop without measuring
`);
  process.exit(0);
}

function intFlag(value: string | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench: --${name} must be an integer ≥ ${min}\n`);
    process.exit(2);
  }
  return n;
}

const quick = flags.quick;
const opts = {
  rounds: intFlag(flags.rounds, quick ? 1 : 8, 'rounds'),
  duration: intFlag(flags.duration, quick ? 1 : 3, 'duration'),
  // Gatehouse has more code for V8 to optimise than the bare forwarder: measured, its CPU per request kept
  // falling for about 10 s of load, so a short warm-up charged it for compiling (docs/performance.md).
  warmup: intFlag(flags.warmup, quick ? 1 : 6, 'warmup', 0),
  connections: intFlag(flags.connections, 32, 'connections'),
  withHpm: flags['with-hpm'],
  withDispatch: flags['with-dispatch'],
  candidate: flags.candidate ? resolve(flags.candidate) : flags['candidate-env'] ? ROOT : undefined,
  candidateEnv: Object.fromEntries(
    (flags['candidate-env'] ?? []).map((kv) => {
      const eq = kv.indexOf('=');
      if (eq < 1) {
        process.stderr.write(`bench: --candidate-env takes KEY=VALUE, got "${kv}"\n`);
        process.exit(2);
      }
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  ),
  profileSeconds: intFlag(flags['profile-seconds'], quick ? 2 : 5, 'profile-seconds'),
  profileLevels: (flags['profile-levels'] ?? 'info,warn')
    .split(',')
    .map((l) => l.trim())
    .filter((l) => /^(fatal|error|warn|info|debug|trace|silent)$/.test(l)),
  wsCount: intFlag(flags['ws-count'], quick ? 500 : 10_000, 'ws-count', 0),
  sseSamples: quick ? 5 : 20,
  wsMessages: quick ? 100 : 500,
};

// ---------------------------------------------------------------------------------------------------------
// Lifecycle: every process is tracked and stopped on success, error, Ctrl-C and watchdog alike.

const procs = createProcRegistry();
const openSockets = new Set<WebSocket>();
let idp: TestIdp | undefined;
let workDir: string | undefined;
let stopLoad: (() => void) | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function log(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    stopLoad?.();
    for (const ws of openSockets) ws.terminate();
    openSockets.clear();
    await idp?.close().catch(() => undefined);
    await procs.stopAll();
    if (workDir && !flags.keep) rmSync(workDir, { recursive: true, force: true });
    else if (workDir) log(`kept ${workDir}`);
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, stopping everything it started…\n`);
    void cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => procs.killAllNow());

const setupsCount = 11 + (opts.withHpm ? 1 : 0) + (opts.withDispatch ? 2 : 0) + (opts.candidate ? 3 : 0);
const plannedSeconds =
  setupsCount * (opts.warmup + opts.rounds * opts.duration) * 1.25 + 240 + (flags.hold !== undefined ? Number(flags.hold) || 0 : 0);
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: watchdog: still running after ${Math.round(plannedSeconds)} s, stopping\n`);
  interrupted = true;
  void cleanup().finally(() => process.exit(1));
}, plannedSeconds * 1000);
watchdog.unref();

// ---------------------------------------------------------------------------------------------------------
// Starting servers

/** A Node child (bench/servers/*.ts) that listens on a free port and reports it over IPC. */
async function startNodeServer(
  name: string,
  script: string,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<{ proc: Proc; port: number }> {
  const dir = workDir as string;
  const proc = procs.start(name, process.execPath, [...nodeArgs, join(SERVERS, script)], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
    logPath: join(dir, `${name}.log`),
    ipc: true,
    cwd: ROOT,
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not report its port within 10 s${tailOf(proc)}`)), 10_000);
    proc.child.once('message', (m: unknown) => {
      clearTimeout(timer);
      const p = (m as { port?: unknown } | null)?.port;
      if (typeof p === 'number') resolvePort(p);
      else reject(new Error(`${name} sent ${JSON.stringify(m)}`));
    });
    proc.child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}${tailOf(proc)}`));
    });
  });
  return { proc, port };
}

async function startNginx(
  name: string,
  nginx: string,
  confFor: (dir: string, port: number) => string,
): Promise<{ proc: Proc; port: number }> {
  const dir = join(workDir as string, name);
  const port = await freePort();
  const conf = confFor(dir, port);
  const proc = procs.start(name, process.execPath, [SUPERVISE, nginx, ...nginxArgs(dir, conf)], {
    logPath: join(dir, 'stdout.log'),
    ipc: true,
  });
  await waitForPort(port, 5000, proc);
  return { proc, port };
}

async function startRedisServer(): Promise<string> {
  const fromEnv = process.env['REDIS_URL'];
  if (fromEnv) return fromEnv;
  const redis = findExecutable('redis-server');
  if (!redis) throw new Error('redis-server is not installed and REDIS_URL is not set');
  const port = await freePort();
  const proc = procs.start(
    'redis',
    process.execPath,
    [SUPERVISE, redis, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    {
      logPath: join(workDir as string, 'redis.log'),
      ipc: true,
    },
  );
  await waitForPort(port, 5000, proc);
  return `redis://127.0.0.1:${port}`;
}

interface GatehouseChild {
  readonly proc: Proc;
  readonly url: string;
  readonly port: number;
}

/**
 * Starts `node src/main.ts` and waits for /readyz. A child that exits during start-up is retried twice with a
 * printed note (seen: ioredis's intermittent "Connection in subscriber mode" while the subscriptions are made).
 */
async function startGatehouse(
  name: string,
  port: number,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
  root = ROOT,
): Promise<GatehouseChild> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGatehouseOnce(name, port, env, nodeArgs, root);
    } catch (err) {
      if (!(err instanceof StartupExit) || attempt >= 3) throw err;
      log(`note: ${name} exited during start-up (attempt ${attempt}): "${err.detail}"; retrying`);
    }
  }
}

class StartupExit extends Error {
  readonly detail: string;
  constructor(message: string, detail: string) {
    super(message);
    this.detail = detail;
  }
}

async function startGatehouseOnce(
  name: string,
  port: number,
  env: Record<string, string>,
  nodeArgs: readonly string[],
  root: string,
): Promise<GatehouseChild> {
  const url = `http://127.0.0.1:${port}`;
  const proc = procs.start(name, process.execPath, ['--import', ORPHAN_GUARD, ...nodeArgs, join(root, 'src', 'main.ts')], {
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      PORT: String(port),
      APP_BASE_URL: url,
      HOST: '127.0.0.1',
      ...env,
    },
    logPath: join(workDir as string, `${name}.log`),
    ipc: true,
    cwd: root,
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exited()) {
      await proc.stop();
      const tail = tailOf(proc, 3);
      throw new StartupExit(`${name} exited during start-up${tail}`, tail.trim().split('\n').slice(-1)[0] ?? '');
    }
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return { proc, url, port };
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`${name} was not ready within 30 s${tailOf(proc)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function expectStatus(
  url: string,
  status: number,
  headers: Record<string, string> = {},
  method = 'GET',
  body?: string,
): Promise<void> {
  const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${method} ${url} answered ${res.status}, expected ${status}`);
}

function version(cmd: string, args: string[]): string {
  // nginx -v prints to stderr; wrk -v prints to stdout and exits with 1.
  const first = (text: string | undefined) => text?.split('\n')[0]?.trim() || undefined;
  try {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
    return first(r.stdout) ?? first(r.stderr) ?? '?';
  } catch {
    return '?';
  }
}

/** What the full-policy setup's answers must carry; returns its rate limit's `RateLimit` remaining count and seconds to reset. */
async function policyAnswer(url: string, headers: Record<string, string>): Promise<{ left: number; reset: number }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  const rateLimit = res.headers.get('ratelimit') ?? '';
  const left = Number(/;r=(\d+)/.exec(rateLimit)?.[1]);
  const reset = Number(/;t=(\d+)/.exec(rateLimit)?.[1]);
  if (res.status !== 200) throw new Error(`full policy: GET ${url} answered ${res.status}`);
  if (!res.headers.get('ratelimit-policy') || !Number.isFinite(left) || !Number.isFinite(reset))
    throw new Error(`full policy: no RateLimit fields ("${rateLimit}")`);
  if (res.headers.get('access-control-allow-origin') !== POLICY_ORIGIN)
    throw new Error('full policy: no CORS answer for the allowed origin');
  return { left, reset };
}

/**
 * The full-policy setup measures what it claims: each stage is configured on its route and acts (a foreign origin
 * gets no CORS header, a preflight allows the CSRF header, a POST is refused by the rule, another user lacks the
 * claim), and the measured request passes them all with the RateLimit fields. Returns the limit's remaining count.
 */
async function checkPolicy(base: string, setup: Setup, cookie: string): Promise<void> {
  const headers = { cookie, origin: POLICY_ORIGIN, 'x-csrf': '1' };
  const { left } = await policyAnswer(setup.url, headers);
  const foreign = await fetch(setup.url, { headers: { ...headers, origin: 'https://evil.bench.test' } });
  await foreign.arrayBuffer();
  if (foreign.status !== 200 || foreign.headers.has('access-control-allow-origin'))
    throw new Error('full policy: a foreign origin got CORS headers');
  const preflight = await fetch(setup.url, {
    method: 'OPTIONS',
    headers: { origin: POLICY_ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-csrf' },
  });
  await preflight.arrayBuffer();
  if (preflight.status !== 204 || !/x-csrf/i.test(preflight.headers.get('access-control-allow-headers') ?? ''))
    throw new Error(`full policy: preflight answered ${preflight.status} without the CSRF header allowed`);
  await expectStatus(setup.url, 405, headers, 'POST', '{}'); // the route rule allows GET only
  const other = new Browser();
  const otherLogin = await other.login(base, 'bob');
  if (otherLogin.callbackStatus !== 302) throw new Error(`login as bob ended with ${otherLogin.callbackStatus}`);
  await expectStatus(setup.url, 403, { ...headers, cookie: other.cookieHeader(base) ?? '' }); // bob lacks sub: alice
  log(
    `checked: full policy answers 200 with RateLimit (${left} left) and CORS for ${POLICY_ORIGIN}; a foreign origin gets no CORS, the preflight allows X-CSRF, POST gets 405, bob gets 403`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Measuring

interface Setup {
  readonly key: string;
  readonly label: string;
  readonly url: string;
  readonly headers: readonly string[];
  /** The process whose CPU time is charged to this setup (the proxy, or the backend when it is measured alone). */
  readonly pid: number;
  /** GET unless given; `body` is sent with every request. */
  readonly method?: string;
  readonly body?: string;
}

type Probe = { median: number; p90: number };
type WsProbe = { median: number; p99: number };

interface Run extends WrkResult {
  /** CPU time the setup's process used per request, in µs (user + system). */
  readonly cpuUs: number;
}

interface SetupResult {
  readonly setup: Setup;
  readonly runs: Run[];
  rps: number;
  cpuUs: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Servers that must stay up for the whole run: a crash under load is reported with the server's own last words. */
function checkAlive(): void {
  const dead = procs.list().filter((p) => p.exited() && !p.stopping);
  if (dead.length > 0) throw new Error(dead.map((p) => `${p.name} (pid ${p.pid}) died${tailOf(p)}`).join('\n'));
}

async function load(setup: Setup, seconds: number): Promise<Run> {
  const cpuBefore = cpuSeconds(setup.pid);
  try {
    const r = await (client as LoadClient).run({
      url: setup.url,
      seconds,
      connections: opts.connections,
      threads: 1,
      headers: setup.headers,
      ...(setup.method !== undefined ? { method: setup.method } : {}),
      ...(setup.body !== undefined ? { body: setup.body } : {}),
      onStart: (stop) => {
        stopLoad = stop;
      },
    });
    const cpuAfter = cpuSeconds(setup.pid);
    const cpuUs =
      cpuBefore !== undefined && cpuAfter !== undefined && r.requests > 0 ? ((cpuAfter - cpuBefore) * 1e6) / r.requests : Number.NaN;
    return { ...r, cpuUs };
  } catch (err) {
    checkAlive();
    throw err;
  } finally {
    stopLoad = undefined;
    checkAlive();
  }
}

interface LoadClient {
  readonly name: 'wrk' | 'autocannon';
  /** How the plan and results name the client, e.g. "wrk -t1 -c32". */
  readonly label: string;
  readonly version: string;
  run(o: LoadOptions): Promise<WrkResult>;
  /** The command line a person would type for the same load (printed by --hold). */
  command(url: string, headers: readonly string[]): string;
}

/** wrk when installed (or asked for); else autocannon from devDependencies; else nothing can be measured. */
function chooseClient(): LoadClient | undefined {
  const wanted = flags.client;
  const wrk = wanted === 'autocannon' ? undefined : findExecutable('wrk');
  if (wrk) {
    return {
      name: 'wrk',
      label: `wrk -t1 -c${opts.connections}`,
      version: version(wrk, ['-v']),
      run: (o) => runWrk(wrk, o),
      command: (url, headers) => `wrk -t1 -c${opts.connections} -d5s${headers.map((h) => ` -H '${h}'`).join('')} ${url}`,
    };
  }
  const script = wanted === 'wrk' ? undefined : autocannonPath();
  if (!script) return undefined;
  const pkg = JSON.parse(readFileSync(join(dirname(script), 'package.json'), 'utf8')) as { version: string };
  return {
    name: 'autocannon',
    label: `autocannon -c${opts.connections}`,
    version: `autocannon ${pkg.version}`,
    run: (o) => runAutocannon(script, o),
    command: (url, headers) =>
      `node ${relative(ROOT, script)} -c ${opts.connections} -d 5${headers.map((h) => ` -H '${h}'`).join('')} ${url}`,
  };
}

let client: LoadClient | undefined;

const startedAt = Date.now();

async function main(): Promise<number> {
  if (flags.client !== undefined && flags.client !== 'wrk' && flags.client !== 'autocannon') {
    log(`bench: --client must be wrk or autocannon, got "${flags.client}"`);
    return 1;
  }
  client = chooseClient();
  if (!client) {
    log(
      `bench: no load client: ${flags.client === 'wrk' ? 'wrk is not installed (apt-get install wrk)' : 'neither wrk (apt-get install wrk) nor the autocannon devDependency (npm ci) is there'}. Nothing was measured.`,
    );
    return 1;
  }
  if (client.name === 'autocannon') {
    log('note: measuring with autocannon, a Node client: it takes more of the shared CPU than wrk and reports latency in');
    log('whole milliseconds. Ratios within this run hold; absolute figures do not compare with wrk runs (docs/performance.md).');
  }
  workDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const nginx = findExecutable('nginx');
  const cpuList = cpus();
  log(`Gatehouse bench — ${new Date().toISOString()}`);
  log(
    `machine: ${cpuList.length} × ${cpuList[0]?.model ?? '?'}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (the load generator shares these cores)`,
  );
  log(`node ${process.version}, ${client.version}, ${nginx ? version(nginx, ['-v']) : 'nginx: not installed'}`);
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', timeout: 5000 }).stdout?.trim() || '?';
  const dirty = (spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8', timeout: 5000 }).stdout ?? '')
    .trim()
    .split('\n')
    .filter(Boolean).length;
  log(`gatehouse: commit ${commit}${dirty > 0 ? ` with ${dirty} uncommitted change(s) under src/` : ''}`);
  log(`plan: ${client.label}, warm-up ${opts.warmup} s, then ${opts.rounds} round(s) × ${opts.duration} s per setup, setups alternating`);
  log('');

  // --- servers ---
  const backend = nginx
    ? await startNginx('nginx-backend', nginx, (dir, port) => writeBackendConf(dir, port))
    : await startNodeServer('node-backend', 'node-backend.ts');
  const backendKind = nginx ? 'nginx return 200' : 'Node http server (nginx not installed)';
  const backendOrigin = `http://127.0.0.1:${backend.port}`;
  const proxy = nginx ? await startNginx('nginx-proxy', nginx, (dir, port) => writeProxyConf(dir, port, backend.port)) : undefined;
  if (!proxy) log('note: nginx is not installed: the nginx proxy_pass baseline is skipped and the backend is a Node server');
  const forwarder = await startNodeServer('bare-forwarder', 'forwarder.ts', { TARGET: backendOrigin, MODE: 'stream' });
  const dispatcher = opts.withDispatch
    ? await startNodeServer('bare-dispatch', 'forwarder.ts', { TARGET: backendOrigin, MODE: 'dispatch' })
    : undefined;
  const hpm = opts.withHpm ? await startNodeServer('hpm-forwarder', 'hpm-forwarder.ts', { TARGET: backendOrigin }) : undefined;
  const stream = await startNodeServer('stream-backend', 'stream-backend.ts');
  // A bare dispatch forwarder (Gatehouse's technique, nothing else) in front of the SSE backend: the cost of any extra hop.
  const sseForwarder = await startNodeServer('sse-forwarder', 'forwarder.ts', {
    TARGET: `http://127.0.0.1:${stream.port}`,
    MODE: 'dispatch',
  });
  const redisUrl = await startRedisServer();

  const ports = { info: await freePort(), warn: await freePort() };
  const urls = [ports.info, ports.warn].map((p) => `http://127.0.0.1:${p}`);
  idp = await startIdp({ gatehouseBaseUrls: urls });
  const configPath = join(workDir, 'config.yml');
  writeFileSync(
    configPath,
    `# generated by bench/run.ts
allowedOrigins: []
schemas:
  - method: POST
    path: ${SCHEMA_PATH}
    body: ${JSON.stringify(BENCH_SCHEMA)}
mappings:
  - frontendHost: "*"
    backend: "${backendOrigin}"
    auth: required
  - frontendHost: "*"
    pathPrefix: "/stream"
    backend: "http://127.0.0.1:${stream.port}"
    auth: required
  # The measured route again with a rate limit never reached: every request is counted in Redis.
  - frontendHost: "*"
    pathPrefix: "/limited"
    backend: "${backendOrigin}"
    auth: required
    rateLimit: { requests: 1000000000, windowSeconds: 60 }
  # "Gatehouse, full policy": the measured GET with every admission stage configured: CORS for the Origin the
  # requests send, CSRF with a required header (a GET is a safe method, so the check only looks it up), a rate
  # limit never reached (counted in Redis) and a route rule that matches the path, allows GET and requires a claim.
  - frontendHost: "*"
    pathPrefix: "${POLICY_PREFIX}"
    backend: "${backendOrigin}"
    auth: required
    csrf: { requireHeader: { name: X-CSRF, value: "1" } }
    cors: { origins: ["${POLICY_ORIGIN}"] }
    rateLimit: { requests: 1000000000, windowSeconds: 60 }
    rules:
      - match: { path: "${POLICY_PREFIX}/*" }
        methods: [GET]
        requireClaims: { sub: ${POLICY_USER} }
`,
  );
  const ghEnv = (clientId: string, level: string): Record<string, string> => ({
    NODE_ENV: 'production',
    OIDC_ISSUER: (idp as TestIdp).issuer,
    OIDC_CLIENT_ID: clientId,
    OIDC_CLIENT_SECRET: (idp as TestIdp).clientSecret,
    OIDC_PROMPT: 'consent',
    REDIS_URL: redisUrl,
    GATEHOUSE_CONFIG: configPath,
    LOG_LEVEL: level,
  });
  const ghInfo = await startGatehouse('gatehouse-info', ports.info, ghEnv(idp.clientId, 'info'));
  const ghWarn = await startGatehouse('gatehouse-warn', ports.warn, ghEnv(`${idp.clientId}-1`, 'warn'));
  // The same as gatehouse-info with metrics on: every request counted, /metrics on a port of its own, scraped after the load.
  const metricsPort = await freePort();
  const ghMetrics = await startGatehouse('gatehouse-metrics', await freePort(), {
    ...ghEnv(idp.clientId, 'info'),
    METRICS_PORT: String(metricsPort),
    METRICS_HOST: '127.0.0.1',
  });
  // A candidate tree (a copy or git worktree with a change to src/) measured beside the current one, at info.
  const ghCandidate = opts.candidate
    ? await startGatehouse(
        'gatehouse-candidate',
        await freePort(),
        { ...ghEnv(idp.clientId, 'info'), ...opts.candidateEnv },
        [],
        opts.candidate,
      )
    : undefined;

  const browser = new Browser();
  const login = await browser.login(ghInfo.url, POLICY_USER);
  if (login.callbackStatus !== 302) throw new Error(`login ended with ${login.callbackStatus}`);
  const cookie = browser.cookieHeader(ghInfo.url);
  if (!cookie) throw new Error('login set no cookie');
  const cookieHeaders = { cookie };
  // The candidate's full-policy GET counts in a rate-limit bucket of its own (a second session of the same user),
  // so the Redis count read around this tree's full-policy runs holds only this tree's requests.
  let candidateCookie = cookie;
  if (ghCandidate) {
    const second = new Browser();
    if ((await second.login(ghInfo.url, POLICY_USER)).callbackStatus !== 302) throw new Error('second login ended badly');
    candidateCookie = second.cookieHeader(ghInfo.url) ?? '';
    if (!candidateCookie || candidateCookie === cookie) throw new Error('second login set no cookie of its own');
  }
  // The headers Gatehouse adds to every upstream request (token, identity, forwarding), read off a real request
  // to the stream backend, for a bare dispatch forwarder that sends exactly them: what relaying them costs.
  let identityForwarder: { proc: Proc; port: number } | undefined;
  let addedBytes = 0;
  if (opts.withDispatch) {
    const sent = (await (await fetch(`${ghInfo.url}/api/stream/headers`, { headers: cookieHeaders })).json()) as string[];
    const added: string[] = [];
    for (let i = 0; i < sent.length; i += 2) {
      const name = (sent[i] as string).toLowerCase();
      if (name === 'authorization' || name === 'x-request-id' || name.startsWith('x-user-') || name.startsWith('x-forwarded-'))
        added.push(sent[i] as string, sent[i + 1] as string);
    }
    addedBytes = added.reduce((n, v) => n + v.length + 2, 0); // "name: " and "value\r\n"
    identityForwarder = await startNodeServer('bare-identity', 'forwarder.ts', {
      TARGET: backendOrigin,
      MODE: 'dispatch',
      ADD_HEADERS: JSON.stringify(added),
    });
  }
  log(
    `servers: backend ${backendKind} :${backend.port}${proxy ? `, nginx proxy :${proxy.port}` : ''}, bare forwarder :${forwarder.port}${dispatcher ? ` (dispatch :${dispatcher.port})` : ''}${hpm ? `, express+hpm :${hpm.port}` : ''}, stream backend :${stream.port}, redis ${redisUrl}, gatehouse :${ghInfo.port} (info) :${ghWarn.port} (warn), logged in as alice`,
  );

  const path = '/api/bench';
  /** The 1 KB JSON POST through a Gatehouse, as the SPA's own page sends it: a cookie POST without its Origin is CSRF. */
  const jsonPost = (key: string, label: string, gh: { url: string; proc: { pid: number } }, target: string): Setup => ({
    key,
    label,
    url: `${gh.url}${target}`,
    headers: [`Cookie: ${cookie}`, 'Content-Type: application/json', `Origin: ${new URL(gh.url).origin}`],
    pid: gh.proc.pid,
    method: 'POST',
    body: BENCH_BODY,
  });
  /** The measured GET on the full-policy mapping, as a cross-origin SPA sends it: its Origin and the CSRF header. */
  const policyGet = (key: string, label: string, gh: { url: string; proc: { pid: number } }, sessionCookie: string): Setup => ({
    key,
    label,
    url: `${gh.url}/api${POLICY_PREFIX}${path.slice('/api'.length)}`,
    headers: [`Cookie: ${sessionCookie}`, `Origin: ${POLICY_ORIGIN}`, 'X-CSRF: 1'],
    pid: gh.proc.pid,
  });
  const setups: Setup[] = [
    {
      key: 'backend',
      label: `backend direct (${nginx ? 'nginx return 200' : 'node'})`,
      url: `${backendOrigin}${path}`,
      headers: [],
      pid: backend.proc.pid,
    },
    ...(proxy
      ? [
          {
            key: 'nginx-proxy',
            label: 'nginx proxy_pass (keep-alive)',
            url: `http://127.0.0.1:${proxy.port}${path}`,
            headers: [],
            pid: proxy.proc.pid,
          },
        ]
      : []),
    {
      key: 'bare',
      label: 'bare Node forwarder (undici stream)',
      url: `http://127.0.0.1:${forwarder.port}${path}`,
      headers: [],
      pid: forwarder.proc.pid,
    },
    ...(dispatcher
      ? [
          {
            key: 'bare-dispatch',
            label: 'bare Node forwarder (undici dispatch)',
            url: `http://127.0.0.1:${dispatcher.port}${path}`,
            headers: [],
            pid: dispatcher.proc.pid,
          },
        ]
      : []),
    ...(identityForwarder
      ? [
          {
            key: 'bare-identity',
            label: `bare dispatch forwarder + Gatehouse's upstream headers (${addedBytes} B)`,
            url: `http://127.0.0.1:${identityForwarder.port}${path}`,
            headers: [],
            pid: identityForwarder.proc.pid,
          },
        ]
      : []),
    ...(hpm
      ? [
          {
            key: 'hpm',
            label: 'Express 5 + http-proxy-middleware',
            url: `http://127.0.0.1:${hpm.port}${path}`,
            headers: [],
            pid: hpm.proc.pid,
          },
        ]
      : []),
    {
      key: 'gatehouse',
      label: 'Gatehouse (LOG_LEVEL=info)',
      url: `${ghInfo.url}${path}`,
      headers: [`Cookie: ${cookie}`],
      pid: ghInfo.proc.pid,
    },
    {
      key: 'gatehouse-ratelimit',
      label: 'Gatehouse + rate limit in Redis (LOG_LEVEL=info)',
      url: `${ghInfo.url}/api/limited${path.slice('/api'.length)}`,
      headers: [`Cookie: ${cookie}`],
      pid: ghInfo.proc.pid,
    },
    policyGet('gatehouse-policy', 'Gatehouse, full policy: CORS, CSRF, rate limit, route rule (info)', ghInfo, cookie),
    {
      key: 'gatehouse-warn',
      label: 'Gatehouse (LOG_LEVEL=warn)',
      url: `${ghWarn.url}${path}`,
      headers: [`Cookie: ${cookie}`],
      pid: ghWarn.proc.pid,
    },
    {
      key: 'bare-post',
      label: 'bare Node forwarder, POST 1 KB JSON',
      url: `http://127.0.0.1:${forwarder.port}/api${SCHEMA_PATH}`,
      headers: ['Content-Type: application/json'],
      pid: forwarder.proc.pid,
      method: 'POST',
      body: BENCH_BODY,
    },
    // The same POST on the same mapping to a path no schemas entry names: streamed through, not buffered. Sets
    // the schema POST's cost apart from what any POST through Gatehouse costs.
    jsonPost('gatehouse-post', 'Gatehouse, POST 1 KB JSON streamed, no schema (info)', ghInfo, path),
    jsonPost('gatehouse-schema', 'Gatehouse, POST 1 KB JSON checked by a schema (info)', ghInfo, `/api${SCHEMA_PATH}`),
    {
      key: 'gatehouse-metrics',
      label: 'Gatehouse (LOG_LEVEL=info, METRICS_PORT set)',
      url: `${ghMetrics.url}${path}`,
      headers: [`Cookie: ${cookie}`],
      pid: ghMetrics.proc.pid,
    },
    ...(ghCandidate
      ? [
          {
            key: 'candidate',
            label: `Gatehouse candidate (info${
              Object.keys(opts.candidateEnv).length > 0
                ? `, ${Object.entries(opts.candidateEnv)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(' ')}`
                : ''
            })`,
            url: `${ghCandidate.url}${path}`,
            headers: [`Cookie: ${cookie}`],
            pid: ghCandidate.proc.pid,
          },
          jsonPost('candidate-schema', 'Gatehouse candidate, POST 1 KB JSON checked by a schema (info)', ghCandidate, `/api${SCHEMA_PATH}`),
          policyGet('candidate-policy', 'Gatehouse candidate, full policy (info)', ghCandidate, candidateCookie),
        ]
      : []),
  ];
  for (const s of setups) {
    const headers = Object.fromEntries(s.headers.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
    await expectStatus(s.url, 200, headers, s.method, s.body);
  }
  // The schema setup really checks: a body the schema refuses gets 400, and never reaches the backend.
  await expectStatus(
    `${ghInfo.url}/api${SCHEMA_PATH}`,
    400,
    { cookie, 'content-type': 'application/json', origin: new URL(ghInfo.url).origin },
    'POST',
    '{"id":"x"}',
  );
  await expectStatus(`${ghInfo.url}${path}`, 401); // the load really goes through auth: without the cookie it is refused
  log('checked: every setup answers 200; Gatehouse answers 401 without the session cookie');
  const policySetup = setups.find((s) => s.key === 'gatehouse-policy') as Setup;
  await checkPolicy(ghInfo.url, policySetup, cookie);
  const policyHeaders = { cookie, origin: POLICY_ORIGIN, 'x-csrf': '1' };
  // Redis counted every measured full-policy request: its RateLimit count, read before and after each measured run
  // that stays inside one 60 s window, falls by at least the requests wrk completed.
  const policyCount = { counted: 0, completed: 0, runs: 0 };
  if (flags.hold !== undefined) {
    const seconds = intFlag(flags.hold, 60, 'hold');
    for (const s of setups) log(`  ${s.key.padEnd(15)} pid ${s.pid}  ${client.command(s.url, s.headers)}`);
    log(`holding for ${seconds} s (Ctrl-C stops everything)`);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    return 0;
  }

  // --- throughput and latency ---
  const results = new Map<string, SetupResult>(
    setups.map((s) => [s.key, { setup: s, runs: [], rps: 0, cpuUs: 0, p50: 0, p99: 0, errors: 0 }]),
  );
  if (opts.warmup > 0) {
    log(`warm-up: ${opts.warmup} s each`);
    for (const s of setups) await load(s, opts.warmup);
  }
  const logBytesBefore = statSync(ghInfo.proc.logPath as string).size;
  let ghInfoRequests = 0;
  // The setups the targets compare run back to back in every round (rotated), the other baselines after them:
  // on a shared machine conditions drift within a round, and each ratio is taken between neighbours in time.
  const paired = setups.filter((s) => PAIRED.has(s.key));
  const others = setups.filter((s) => !PAIRED.has(s.key));
  const rotate = (list: Setup[], by: number) => list.map((_, i) => list[(i + by) % list.length] as Setup);
  for (let round = 0; round < opts.rounds; round++) {
    const order = [...rotate(paired, round), ...rotate(others, round)];
    const line: string[] = [];
    for (const s of order) {
      const before = s === policySetup ? await policyAnswer(s.url, policyHeaders) : undefined;
      const r = await load(s, opts.duration);
      if (before && before.reset > opts.duration + 2) {
        const after = await policyAnswer(s.url, policyHeaders);
        policyCount.counted += before.left - after.left - 1; // the read after counts itself
        policyCount.completed += r.requests;
        policyCount.runs++;
      }
      const entry = results.get(s.key) as SetupResult;
      entry.runs.push(r);
      if (s.key === 'gatehouse') ghInfoRequests += r.requests;
      line.push(`${s.key} ${Math.round(r.rps)}`);
    }
    log(`round ${round + 1}/${opts.rounds}: ${line.join(', ')} req/s`);
  }
  const logBytes = statSync(ghInfo.proc.logPath as string).size - logBytesBefore;
  // The access log of the measured rounds: the status of every full-policy request Gatehouse answered.
  const policyStatuses = new Map<number, number>();
  const policyPath = `"path":${JSON.stringify(new URL(policySetup.url).pathname)}`;
  for await (const line of createInterface({ input: createReadStream(ghInfo.proc.logPath as string, { start: logBytesBefore }) })) {
    if (!line.includes(policyPath)) continue;
    const status = Number(/"status":(\d+)/.exec(line)?.[1]);
    policyStatuses.set(status, (policyStatuses.get(status) ?? 0) + 1);
  }
  // Every measured full-policy request was counted in Redis: the limit's remaining count fell by as many (the
  // checks' and warm-up's requests included; leases may hold up to 160 more: a lease of 128 and a quarter).
  // The counts are real: what the metrics Gatehouse says it answered (warm-up and checks included).
  const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const counted = /^gatehouse_requests_total\{mapping="mappings\[0\]",method="GET",status_class="2xx"\} (\d+)/m.exec(scrape)?.[1];
  for (const r of results.values()) {
    r.rps = median(r.runs.map((x) => x.rps));
    r.p50 = median(r.runs.map((x) => x.p50));
    r.p99 = median(r.runs.map((x) => x.p99));
    r.cpuUs = median(r.runs.map((x) => x.cpuUs));
    r.errors = r.runs.reduce((n, x) => n + x.non2xx + x.socketErrors, 0);
  }

  // --- streaming probes ---
  const ghStream = `${ghInfo.url}/api/stream`;
  const directStream = `http://127.0.0.1:${stream.port}/stream`;
  log(`SSE first-event delay (${opts.sseSamples} requests each, interleaved)…`);
  const [sseDirect, sseBare, sseGh] = (await sseCompare(
    [
      { url: `${directStream}/sse`, headers: {} },
      { url: `http://127.0.0.1:${sseForwarder.port}/stream/sse`, headers: {} },
      { url: `${ghStream}/sse`, headers: cookieHeaders },
    ],
    opts.sseSamples,
  )) as [Probe, Probe, Probe];
  log(`WebSocket echo round trip (${opts.wsMessages} messages each, interleaved)…`);
  const wsUrl = (u: string) => u.replace(/^http/, 'ws');
  const [wsDirect, wsGh] = (await wsCompare(
    [
      { url: `${wsUrl(directStream)}/ws`, headers: {} },
      { url: `${wsUrl(ghStream)}/ws`, headers: cookieHeaders },
    ],
    opts.wsMessages,
  )) as [WsProbe, WsProbe];

  // --- memory per idle WebSocket ---
  let wsCount = opts.wsCount;
  let wsNote = '';
  const limit = openFileLimit();
  // Gatehouse holds two sockets per proxied WebSocket (client and backend side); keep headroom for the rest.
  if (limit && Number.isFinite(limit.soft) && 2 * wsCount + 256 > limit.soft) {
    const reduced = Math.max(0, Math.floor((limit.soft - 256) / 2));
    wsNote = `open-file limit (ulimit -n) is ${limit.soft}: ${reduced} WebSockets instead of ${wsCount} (raise it with ulimit -n ${2 * wsCount + 256})`;
    log(`note: ${wsNote}`);
    wsCount = reduced;
  }
  let memory: { count: number; beforeKb: number; afterKb: number; closedKb: number; perConnKb: number; seconds: number } | undefined;
  if (wsCount > 0) {
    // A fresh Gatehouse (same settings as the info instance): after the load rounds a process has megabytes of
    // freed heap that new connections would fill without growing RSS, which understates the cost.
    log(`memory: opening ${wsCount} idle authenticated WebSockets through a fresh Gatehouse (LOG_LEVEL=info)…`);
    // One logged-in session opens them all, so the per-identity WebSocket limit (default 100) is lifted here.
    const ghMem = await startGatehouse('gatehouse-memory', await freePort(), {
      ...ghEnv(idp.clientId, 'info'),
      WS_MAX_PER_IDENTITY: String(wsCount + 100),
    });
    const memWs = `${wsUrl(ghMem.url)}/api/stream/ws`;
    for (const ws of await openMany(memWs, cookieHeaders, 50, 50)) ws.terminate(); // warm-up: code paths loaded and compiled
    await new Promise((r) => setTimeout(r, 1500));
    const beforeKb = rssKb(ghMem.proc.pid) ?? Number.NaN;
    const started = Date.now();
    const sockets = await openMany(memWs, cookieHeaders, wsCount, 250);
    for (const ws of sockets) openSockets.add(ws);
    const seconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 1500));
    const afterKb = rssKb(ghMem.proc.pid) ?? Number.NaN;
    for (const ws of sockets) ws.terminate();
    openSockets.clear();
    await new Promise((r) => setTimeout(r, 1500));
    const closedKb = rssKb(ghMem.proc.pid) ?? Number.NaN;
    await ghMem.proc.stop();
    memory = { count: wsCount, beforeKb, afterKb, closedKb, perConnKb: (afterKb - beforeKb) / wsCount, seconds };
  }

  // --- report ---
  const bare = results.get('bare') as SetupResult;
  const gh = results.get('gatehouse') as SetupResult;
  const ghWarnRes = results.get('gatehouse-warn') as SetupResult;
  const rateLimitRes = results.get('gatehouse-ratelimit') as SetupResult;
  const ngx = results.get('nginx-proxy');
  const hpmRes = results.get('hpm');
  const dispatchRes = results.get('bare-dispatch');
  const identityRes = results.get('bare-identity');
  const candRes = results.get('candidate');
  const metricsRes = results.get('gatehouse-metrics') as SetupResult;
  const policyRes = results.get('gatehouse-policy') as SetupResult;
  log('');
  log(
    `Results: medians of ${opts.rounds} round(s) × ${opts.duration} s, ${client.label}, ${cpuList.length} cores shared by client and servers`,
  );
  const rows = [...results.values()].map((r) => [
    r.setup.label,
    Math.round(r.rps).toLocaleString('en-US'),
    fmtMs(r.p50),
    fmtMs(r.p99),
    `${Math.round(Math.min(...r.runs.map((x) => x.rps)))}–${Math.round(Math.max(...r.runs.map((x) => x.rps)))}`,
    Number.isFinite(r.cpuUs) ? `${r.cpuUs.toFixed(0)} µs` : 'n/a',
    String(r.errors),
  ]);
  log(table(['setup', 'req/s', 'p50', 'p99', 'req/s range', 'CPU/req', 'errors'], rows));
  log("CPU/req: user+system time of the setup's own process per request (the proxy's; the backend's for the direct row).");
  log('');
  const ratio = (a: number, b: number) => (b > 0 ? a / b : Number.NaN);
  // Paired ratios: the median over rounds of the ratio within each round (the two setups ran seconds apart).
  const pairedRatio = (a: SetupResult, b: SetupResult, metric: 'rps' | 'p99' | 'cpuUs') =>
    median(a.runs.map((r, i) => ratio(r[metric], (b.runs[i] as Run)[metric])));
  const spread = (a: SetupResult, b: SetupResult) => {
    const per = a.runs.map((r, i) => ratio(r.rps, (b.runs[i] as Run).rps));
    return per.length > 1 ? ` (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})` : '';
  };
  /** A paired comparison's two lines: throughput (with the rounds' spread) and CPU per request. */
  const pairRows = (name: string, a: SetupResult, b: SetupResult): Array<[string, string]> => [
    [`${name}, throughput`, `${pairedRatio(a, b, 'rps').toFixed(2)}${spread(a, b)}`],
    [`${name}, CPU per request`, pairedRatio(a, b, 'cpuUs').toFixed(2)],
  ];
  const tput = pairedRatio(gh, bare, 'rps');
  const schemaRes = results.get('gatehouse-schema') as SetupResult;
  const barePost = results.get('bare-post') as SetupResult;
  const postRes = results.get('gatehouse-post') as SetupResult;
  const candSchemaRes = results.get('candidate-schema');
  const candPolicyRes = results.get('candidate-policy');
  const schemaTput = pairedRatio(schemaRes, barePost, 'rps');
  const p99 = pairedRatio(gh, bare, 'p99');
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const metricsTput = pairedRatio(metricsRes, gh, 'rps');
  const policyTput = pairedRatio(policyRes, bare, 'rps');
  const ratios: Array<[string, string]> = [
    [
      'Gatehouse / bare forwarder, throughput',
      `${tput.toFixed(2)} (target ≥ ${TARGET_THROUGHPUT.toFixed(2)}: ${verdict(tput >= TARGET_THROUGHPUT)})${spread(gh, bare)}`,
    ],
    ['Gatehouse / bare forwarder, p99', `${p99.toFixed(2)} (target ≤ ${TARGET_P99.toFixed(2)}: ${verdict(p99 <= TARGET_P99)})`],
    [
      'POST 1 KB JSON: Gatehouse + schema / bare forwarder, throughput',
      `${schemaTput.toFixed(2)} (target ≥ ${TARGET_SCHEMA_THROUGHPUT.toFixed(2)}: ${verdict(schemaTput >= TARGET_SCHEMA_THROUGHPUT)})${spread(schemaRes, barePost)}`,
    ],
    ['POST 1 KB JSON: Gatehouse + schema / bare forwarder, CPU per request', pairedRatio(schemaRes, barePost, 'cpuUs').toFixed(2)],
    ...pairRows('POST 1 KB JSON: Gatehouse streamed / bare forwarder', postRes, barePost),
    ['POST 1 KB JSON: Gatehouse + schema / Gatehouse streamed, CPU per request', pairedRatio(schemaRes, postRes, 'cpuUs').toFixed(2)],
    [
      'Gatehouse full policy / bare forwarder, throughput',
      `${policyTput.toFixed(2)} (target ≥ ${TARGET_POLICY_THROUGHPUT.toFixed(2)}: ${verdict(policyTput >= TARGET_POLICY_THROUGHPUT)})${spread(policyRes, bare)}`,
    ],
    ['Gatehouse full policy / bare forwarder, p99', pairedRatio(policyRes, bare, 'p99').toFixed(2)],
    ['Gatehouse full policy / bare forwarder, CPU per request', pairedRatio(policyRes, bare, 'cpuUs').toFixed(2)],
    ['Gatehouse full policy / Gatehouse (info), throughput', `${pairedRatio(policyRes, gh, 'rps').toFixed(2)}${spread(policyRes, gh)}`],
    ['Gatehouse full policy / Gatehouse (info), CPU per request', pairedRatio(policyRes, gh, 'cpuUs').toFixed(2)],
    ...(ngx ? [['Gatehouse / nginx proxy_pass, throughput', ratio(gh.rps, ngx.rps).toFixed(2)] as [string, string]] : []),
    ['Gatehouse warn / bare forwarder, throughput', `${pairedRatio(ghWarnRes, bare, 'rps').toFixed(2)}${spread(ghWarnRes, bare)}`],
    ['Gatehouse warn / info, throughput (access-log cost)', pairedRatio(ghWarnRes, gh, 'rps').toFixed(2)],
    [
      'Gatehouse with metrics / without, throughput',
      `${metricsTput.toFixed(2)} (target ≥ ${TARGET_METRICS.toFixed(2)}: ${verdict(metricsTput >= TARGET_METRICS)})${spread(metricsRes, gh)}`,
    ],
    ['Gatehouse with metrics / without, CPU per request', pairedRatio(metricsRes, gh, 'cpuUs').toFixed(2)],
    ['Gatehouse / bare forwarder, CPU per request', pairedRatio(gh, bare, 'cpuUs').toFixed(2)],
    ['Gatehouse rate limit on / off, throughput', `${pairedRatio(rateLimitRes, gh, 'rps').toFixed(2)}${spread(rateLimitRes, gh)}`],
    ['Gatehouse rate limit on / off, p99', pairedRatio(rateLimitRes, gh, 'p99').toFixed(2)],
    ['Gatehouse rate limit on / off, CPU per request', pairedRatio(rateLimitRes, gh, 'cpuUs').toFixed(2)],
    ['Gatehouse rate limit / bare forwarder, throughput', pairedRatio(rateLimitRes, bare, 'rps').toFixed(2)],
    ['Gatehouse warn / bare forwarder, CPU per request', pairedRatio(ghWarnRes, bare, 'cpuUs').toFixed(2)],
    ...(dispatchRes
      ? [['Gatehouse / bare dispatch forwarder, throughput', pairedRatio(gh, dispatchRes, 'rps').toFixed(2)] as [string, string]]
      : []),
    ...(dispatchRes && identityRes
      ? [
          [
            'dispatch + Gatehouse headers / dispatch, throughput (price of the headers)',
            pairedRatio(identityRes, dispatchRes, 'rps').toFixed(2),
          ] as [string, string],
          ['Gatehouse / dispatch + Gatehouse headers, throughput', pairedRatio(gh, identityRes, 'rps').toFixed(2)] as [string, string],
        ]
      : []),
    ...(candRes
      ? [
          ['candidate / bare forwarder, throughput', `${pairedRatio(candRes, bare, 'rps').toFixed(2)}${spread(candRes, bare)}`] as [
            string,
            string,
          ],
          ['candidate / bare forwarder, p99', pairedRatio(candRes, bare, 'p99').toFixed(2)] as [string, string],
          ['candidate / bare forwarder, CPU per request', pairedRatio(candRes, bare, 'cpuUs').toFixed(2)] as [string, string],
          ['candidate / Gatehouse, throughput', pairedRatio(candRes, gh, 'rps').toFixed(2)] as [string, string],
        ]
      : []),
    ...(candSchemaRes
      ? [
          ...pairRows('candidate schema POST / bare forwarder POST', candSchemaRes, barePost),
          ...pairRows('candidate schema POST / Gatehouse schema POST', candSchemaRes, schemaRes),
        ]
      : []),
    ...(candPolicyRes
      ? [
          ...pairRows('candidate full policy / bare forwarder', candPolicyRes, bare),
          ...pairRows('candidate full policy / Gatehouse full policy', candPolicyRes, policyRes),
        ]
      : []),
    ...(hpmRes ? [['Gatehouse / Express+hpm, throughput', ratio(gh.rps, hpmRes.rps).toFixed(2)] as [string, string]] : []),
  ];
  for (const [k, v] of ratios) log(`${k.padEnd(52)} ${v}`);
  if (ghInfoRequests > 0) log(`access log at info: ${(logBytes / ghInfoRequests).toFixed(0)} bytes per request`);
  log(`metrics: gatehouse-metrics counted ${counted ?? '?'} GET 2xx requests on /metrics (its port ${metricsPort})`);
  const policySent = policyRes.runs.reduce((n, r) => n + r.requests, 0);
  log(`full policy, access log of the rounds: ${[...policyStatuses].map(([status, n]) => `${n} × ${status}`).join(', ') || 'no lines'}`);
  log(
    `full policy: ${policySent} measured requests, ${policyRes.errors} non-2xx or socket errors; in the ${policyCount.runs} run(s) inside one window Redis counted ${policyCount.counted} for ${policyCount.completed} completed (leases and requests cut off at the end may add up to ~320)`,
  );
  log('');
  log(
    `SSE first event:   direct ${fmtMs(sseDirect.median)} (p90 ${fmtMs(sseDirect.p90)}), through a bare dispatch forwarder ${fmtMs(sseBare.median)} (p90 ${fmtMs(sseBare.p90)}), through Gatehouse ${fmtMs(sseGh.median)} (p90 ${fmtMs(sseGh.p90)}): Gatehouse adds ${fmtMs(sseGh.median - sseDirect.median)}`,
  );
  log(
    `WebSocket echo:    direct ${fmtMs(wsDirect.median)} (p99 ${fmtMs(wsDirect.p99)}), through Gatehouse ${fmtMs(wsGh.median)} (p99 ${fmtMs(wsGh.p99)}), added ${fmtMs(wsGh.median - wsDirect.median)}`,
  );
  if (memory) {
    log(
      `Memory (RSS):      ${(memory.beforeKb / 1024).toFixed(1)} MiB before, ${(memory.afterKb / 1024).toFixed(1)} MiB with ${memory.count} idle WebSockets (opened in ${memory.seconds.toFixed(1)} s), ${(memory.closedKb / 1024).toFixed(1)} MiB after closing them: ${memory.perConnKb.toFixed(1)} KB per connection`,
    );
  }
  log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; measured in ${Math.round((Date.now() - startedAt) / 1000)} s`,
  );

  // --- profile ---
  const policyMissed = !(policyTput >= TARGET_POLICY_THROUGHPUT);
  const missed = !(tput >= TARGET_THROUGHPUT) || !(p99 <= TARGET_P99) || policyMissed;
  let profileText: string | undefined;
  if (!flags['no-profile'] && (flags.profile || (missed && !quick))) {
    log('');
    log(
      `${missed ? 'A target was missed: ' : ''}CPU profiles over the inspector (${opts.profileSeconds} s of the same load after 1 s warm-up; the bare forwarder is the reference)…`,
    );
    const runs: ProfiledRun[] = [];
    const profileOne = async (label: string, proc: Proc, url: string, headers: readonly string[], post?: string) => {
      const setup: Setup = {
        key: label,
        label,
        url,
        headers,
        pid: proc.pid,
        ...(post !== undefined ? { method: 'POST', body: post } : {}),
      };
      await load(setup, 1);
      let requests = 0;
      let rps = 0;
      const text = await profileWhile(await inspectorUrl(proc.logPath as string), async () => {
        const r = await load(setup, opts.profileSeconds);
        requests = r.requests;
        rps = r.rps;
      });
      await proc.stop();
      writeFileSync(join(workDir as string, `profile-${label.replace(/\W+/g, '-')}.cpuprofile`), text);
      runs.push({ label, summary: summarizeProfile(text), requests });
      log(`  ${label}: ${Math.round(rps)} req/s while sampling`);
    };
    const bareProf = await startNodeServer('profile-bare', 'forwarder.ts', { TARGET: backendOrigin, MODE: 'stream' }, [
      '--inspect=127.0.0.1:0',
    ]);
    await profileOne('bare', bareProf.proc, `http://127.0.0.1:${bareProf.port}${path}`, []);
    for (const level of opts.profileLevels) {
      // Never logs in (the cookie from the first instance works: same Redis, same key prefix), so the client's redirect URI does not matter.
      const gh = await startGatehouse(`profile-gatehouse-${level}`, await freePort(), ghEnv(idp.clientId, level), [
        '--inspect=127.0.0.1:0',
      ]);
      await profileOne(`gatehouse ${level}`, gh.proc, `${gh.url}${path}`, [`Cookie: ${cookie}`]);
    }
    if (flags.profile || policyMissed) {
      const gh = await startGatehouse('profile-gatehouse-policy', await freePort(), ghEnv(idp.clientId, 'info'), ['--inspect=127.0.0.1:0']);
      await profileOne('gatehouse full policy', gh.proc, gh.url + policySetup.url.slice(ghInfo.url.length), policySetup.headers);
    }
    const schemaMissed = !(schemaTput >= TARGET_SCHEMA_THROUGHPUT);
    if (flags.profile || schemaMissed) {
      const post = await startNodeServer('profile-bare-post', 'forwarder.ts', { TARGET: backendOrigin, MODE: 'stream' }, [
        '--inspect=127.0.0.1:0',
      ]);
      await profileOne(
        'bare POST',
        post.proc,
        `http://127.0.0.1:${post.port}/api${SCHEMA_PATH}`,
        ['Content-Type: application/json'],
        BENCH_BODY,
      );
      const gh = await startGatehouse('profile-gatehouse-schema', await freePort(), ghEnv(idp.clientId, 'info'), ['--inspect=127.0.0.1:0']);
      const schema = results.get('gatehouse-schema') as SetupResult;
      await profileOne(
        'gatehouse schema POST',
        gh.proc,
        gh.url + schema.setup.url.slice(ghInfo.url.length),
        // Its own origin: the info instance's is a foreign one here, and would be refused as CSRF.
        schema.setup.headers.map((h) => (h.startsWith('Origin:') ? `Origin: ${gh.url}` : h)),
        BENCH_BODY,
      );
    }
    profileText = formatProfiles(runs);
    log(profileText);
    if (flags.keep) log(`profiles (open in Chrome DevTools): ${workDir}/profile-*.cpuprofile`);
  }

  if (flags.json) {
    writeFileSync(
      flags.json,
      JSON.stringify(
        {
          at: new Date().toISOString(),
          node: process.version,
          cores: cpuList.length,
          options: opts,
          setups: [...results.values()].map((r) => ({
            key: r.setup.key,
            label: r.setup.label,
            rps: r.rps,
            p50Ms: r.p50,
            p99Ms: r.p99,
            cpuUsPerRequest: r.cpuUs,
            errors: r.errors,
            runs: r.runs,
          })),
          ratios: Object.fromEntries(ratios),
          sse: { direct: sseDirect, bareForwarder: sseBare, gatehouse: sseGh },
          ws: { direct: wsDirect, gatehouse: wsGh },
          memory,
          wsNote,
          profile: profileText,
        },
        null,
        2,
      ),
    );
    log(`results written to ${flags.json}`);
  }
  const failedSetups = [...results.values()].filter((r) => r.errors > 0);
  for (const r of failedSetups) log(`warning: ${r.setup.label} had ${r.errors} non-2xx responses or socket errors`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  if (!interrupted) process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  code = 1;
} finally {
  if (!interrupted) await cleanup();
}
clearTimeout(watchdog);
if (!interrupted) process.exit(code);
