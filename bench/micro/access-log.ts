/**
 * What one access-log line costs in CPU, with Gatehouse's own logger (src/observability/logger.ts) and
 * variants of it, writing to a temp file the way production writes to stdout. Evidence for
 * docs/performance.md; run with `node bench/micro/access-log.ts`.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { createAccessLog, type AccessEntry } from '../../src/observability/access-log.ts';
import { batchLines, byteDestination, createLogger } from '../../src/observability/logger.ts';

const N = Number(process.env['LINES'] ?? 100_000);
// Lines written per event-loop turn: under load a turn handles a few responses, not thousands.
const PER_TICK = 4;
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-logbench-'));

async function measure(name: string, make: (file: string) => Logger): Promise<void> {
  const log = make(join(dir, `${name.replace(/\W+/g, '-')}.log`));
  const line = () =>
    log.info({ reqId: randomUUID(), method: 'GET', path: '/api/bench', route: 'mappings[0]', status: 200, ms: 1 }, 'proxy');
  for (let i = 0; i < 5000; i++) line(); // warm-up (JIT)
  await tick();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    line();
    if (i % PER_TICK === 0) await tick();
  }
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  const used = process.cpuUsage(cpu);
  const wall = Number(process.hrtime.bigint() - started) / 1e3;
  const baseline = await emptyLoop();
  process.stdout.write(
    `${name.padEnd(58)} ${((used.user + used.system) / N - baseline).toFixed(2).padStart(6)} µs CPU/line  (${(wall / N).toFixed(2)} µs wall)\n`,
  );
}

let loopCost: number | undefined;
/** CPU of the loop itself (ticks, uuid, object) without logging, subtracted from each figure. */
async function emptyLoop(): Promise<number> {
  if (loopCost !== undefined) return loopCost;
  let sink = 0;
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const o = { reqId: randomUUID(), method: 'GET', path: '/api/bench', route: 'mappings[0]', status: 200, ms: 1 };
    sink += o.reqId.length;
    if (i % PER_TICK === 0) await tick();
  }
  const used = process.cpuUsage(cpu);
  loopCost = (used.user + used.system) / N;
  if (sink === 0) throw new Error('unreachable: keeps the loop body from being optimised away');
  return loopCost;
}

const base = { level: 'info', base: { service: 'gatehouse' } } as const;
/** A logger whose info() writes the access line through createAccessLog, as the proxy does. */
function viaAccessLog(log: Logger): Logger {
  const access = createAccessLog(log);
  return { info: (o: AccessEntry) => access(o), flush: (cb?: (err?: Error) => void) => log.flush(cb) } as unknown as Logger;
}
try {
  await measure('Gatehouse access line (createAccessLog, batched dest)', (f) =>
    viaAccessLog(createLogger({ level: 'info', destination: batchLines(byteDestination(f)) })),
  );
  await measure('Gatehouse logger log.info (batched dest)', (f) =>
    createLogger({ level: 'info', destination: batchLines(byteDestination(f)) }),
  );
  await measure('pino, redact, isoTime, sonic-boom minLength 8192 (before)', (f) =>
    pino(
      {
        ...base,
        timestamp: pino.stdTimeFunctions.isoTime,
        redact: {
          paths: ['authorization', 'cookie', 'token', 'access_token', 'refresh_token', 'id_token', 'client_secret'],
          censor: '[redacted]',
        },
      },
      pino.destination({ dest: f, sync: false, minLength: 8192 }),
    ),
  );
  await measure('pino, no redact, isoTime, batched dest', (f) =>
    pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, batchLines(byteDestination(f))),
  );
  await measure('pino, no redact, epoch time, batched dest', (f) => pino(base, batchLines(byteDestination(f))));
  await measure('pino, no redact, epoch time, sonic-boom per line', (f) => pino(base, pino.destination({ dest: f, sync: false })));
  await measure('level warn (the info call is a no-op)', (f) =>
    createLogger({ level: 'warn', destination: batchLines(byteDestination(f)) }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
