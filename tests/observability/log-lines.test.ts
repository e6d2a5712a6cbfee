import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createAccessLog, type AccessEntry } from '../../src/observability/access-log.ts';
import { batchLines, createLogger, type BatchedDestination, type ByteSink } from '../../src/observability/logger.ts';

const LOGGER = fileURLToPath(new URL('../../src/observability/logger.ts', import.meta.url));

/** A destination that records every write it is handed (strings from pino and the access log, bytes from batchLines). */
function recorder(): BatchedDestination & ByteSink & { writes: string[]; lines: () => Array<Record<string, unknown>> } {
  const writes: string[] = [];
  return {
    writes,
    write(chunk: string | Buffer) {
      writes.push(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      return true;
    },
    flush(cb) {
      cb?.();
    },
    flushSync() {},
    lines: () =>
      writes
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const entry: AccessEntry = {
  reqId: 'r-1',
  trace: '4bf92f3577b34da6a3ce929d0e0e4736',
  method: 'GET',
  path: '/api/v1/users',
  route: 'mappings[0]',
  status: 200,
  ms: 3,
};

describe('the access line', () => {
  it('has the shape and key order pino gives the same fields, with the logger bindings', () => {
    const viaPino = recorder();
    const viaAccess = recorder();
    const pinoLog = createLogger({ level: 'info', destination: viaPino }).child({ replica: 'a' });
    const accessLog = createLogger({ level: 'info', destination: viaAccess }).child({ replica: 'a' });
    pinoLog.info({ ...entry, detail: 'not_found' }, 'proxy');
    createAccessLog(accessLog)({ ...entry, detail: 'not_found' });
    const [a] = viaAccess.lines();
    const [p] = viaPino.lines();
    expect(Object.keys(a ?? {})).toEqual(Object.keys(p ?? {}));
    expect({ ...a, time: 0 }).toEqual({ ...p, time: 0 });
    expect(a).toMatchObject({ level: 'info', service: 'gatehouse', replica: 'a', reqId: 'r-1', status: 200, msg: 'proxy' });
    expect(new Date(String(a?.['time'])).toISOString()).toBe(a?.['time']);
  });

  it('leaves detail out when there is none', () => {
    const out = recorder();
    createAccessLog(createLogger({ level: 'info', destination: out }))(entry);
    expect(out.lines()[0]).not.toHaveProperty('detail');
  });

  it('keeps a hostile path inside one valid JSON line', () => {
    const out = recorder();
    const path = '/api/x"},"level":60,"evil":"\\\n{"forged":true}\u0000\u2028';
    createAccessLog(createLogger({ level: 'info', destination: out }))({ ...entry, path, route: 'r"\n' });
    expect(out.writes).toHaveLength(1);
    expect(out.writes[0]?.split('\n')).toHaveLength(2); // the line and the empty rest after its newline
    const [line] = out.lines();
    expect(line?.['path']).toBe(path);
    expect(line?.['route']).toBe('r"\n');
    expect(line?.['level']).toBe('info');
    expect(line).not.toHaveProperty('evil');
  });

  it('follows the logger level, also when it changes at run time', () => {
    const out = recorder();
    const log = createLogger({ level: 'warn', destination: out });
    const access = createAccessLog(log);
    access(entry);
    expect(out.writes).toEqual([]);
    log.level = 'info';
    access(entry);
    expect(out.lines()).toHaveLength(1);
  });
});

describe('batchLines', () => {
  it('hands lines on in one batch when the batch is full, in order, and nothing before', () => {
    const inner = recorder();
    const out = batchLines(inner, { maxChars: 100, maxDelayMs: 60_000 });
    for (let i = 0; i < 9; i++) out.write(`line ${i} ${'x'.repeat(3)}\n`);
    expect(inner.writes).toEqual([]);
    out.write('line 9 and then some more to pass the limit\n');
    expect(inner.writes).toHaveLength(1);
    expect(inner.writes[0]?.split('\n').filter(Boolean)).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `line ${i} xxx`),
      'line 9 and then some more to pass the limit',
    ]);
  });

  it('writes a partial batch after maxDelayMs', async () => {
    const inner = recorder();
    const out = batchLines(inner, { maxChars: 1 << 20, maxDelayMs: 30 });
    out.write('one\n');
    out.write('two\n');
    expect(inner.writes).toEqual([]);
    await new Promise((r) => setTimeout(r, 120));
    expect(inner.writes).toEqual(['one\ntwo\n']);
  });

  it('hands on UTF-8 bytes, multi-byte characters intact', () => {
    let got: unknown;
    const out = batchLines(
      {
        write: (b: Buffer) => {
          got = b;
        },
        flush: (cb) => cb?.(),
        flushSync() {},
      },
      { maxChars: 1, maxDelayMs: 60_000 },
    );
    out.write('José → ✓\n');
    expect(Buffer.isBuffer(got)).toBe(true);
    expect((got as Buffer).toString('utf8')).toBe('José → ✓\n');
  });

  it('flush() and flushSync() hand on what is pending first', () => {
    const inner = recorder();
    const out = batchLines(inner, { maxChars: 1 << 20, maxDelayMs: 60_000 });
    out.write('a\n');
    let flushed = false;
    out.flush(() => {
      flushed = true;
    });
    expect(inner.writes).toEqual(['a\n']);
    expect(flushed).toBe(true);
    out.write('b\n');
    out.flushSync();
    expect(inner.writes).toEqual(['a\n', 'b\n']);
  });

  it('keeps pino lines and access lines in the order they were written', () => {
    const inner = recorder();
    const log = createLogger({ level: 'info', destination: batchLines(inner, { maxChars: 1 << 20, maxDelayMs: 60_000 }) });
    const access = createAccessLog(log);
    log.info('first');
    access(entry);
    log.warn('third');
    log.flush();
    expect(inner.lines().map((l) => l['msg'])).toEqual(['first', 'proxy', 'third']);
  });
});

describe('the default stdout destination', () => {
  // Lines still in the batch when the process ends must not be lost: a crash is when they matter most.
  const run = (body: string) =>
    spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger({ level: 'info' });\n${body}`,
      ],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );

  it('writes pending lines when the process exits at once', () => {
    const r = run("log.info({ n: 1 }, 'before exit'); process.exit(3);");
    expect(r.status).toBe(3);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).msg),
    ).toEqual(['before exit']);
  });

  it('writes pending lines when the process dies of an uncaught exception', () => {
    const r = run("log.error({ n: 2 }, 'about to crash'); setTimeout(() => { throw new Error('boom'); }, 0);");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('boom');
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).msg),
    ).toEqual(['about to crash']);
  });

  it("writes a quiet process's lines within the batch delay, without exiting", () => {
    const r = run("log.info('soon'); setTimeout(() => { process.stderr.write('waited\\n'); process.kill(process.pid, 'SIGKILL'); }, 600);");
    expect(r.stderr).toContain('waited');
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).msg),
    ).toEqual(['soon']);
  });
});

describe('createLogger', () => {
  it('prints each level as its label, as operators grep for it', () => {
    const out = recorder();
    const log = createLogger({ level: 'trace', destination: out });
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
    expect(out.lines().map((l) => l['level'])).toEqual(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
  });
});
