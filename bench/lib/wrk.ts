import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WrkResult {
  readonly rps: number;
  /** Latency percentiles in milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly socketErrors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function parseDuration(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return Number.NaN;
  return Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? Number.NaN);
}

/** Parses `wrk --latency` output. Throws when the numbers this bench needs are missing. */
export function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = parseDuration(/^\s+50(?:\.000)?%\s+(\S+)/m.exec(out)?.[1]);
  const p99 = parseDuration(/^\s+99(?:\.000)?%\s+(\S+)/m.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = se ? Number(se[1]) + Number(se[2]) + Number(se[3]) + Number(se[4]) : 0;
  if (!Number.isFinite(rps) || !Number.isFinite(p50) || !Number.isFinite(p99)) throw new Error(`unreadable wrk output:\n${out}`);
  return { rps, p50, p99, requests, non2xx, socketErrors };
}

export interface LoadOptions {
  readonly url: string;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
  readonly headers?: readonly string[];
  /** GET unless given; with `body`, every request sends it (ASCII text). */
  readonly method?: string;
  readonly body?: string;
  /** Called with the child so Ctrl-C can stop a run in progress. */
  readonly onStart?: (stop: () => void) => void;
}

/**
 * Runs a load client as its own process, bounded (killed if it overruns its duration by 15 s), and parses
 * what it printed. Shared by wrk and the autocannon fallback.
 */
export function runLoadProcess(
  name: string,
  command: string,
  args: readonly string[],
  o: LoadOptions,
  parse: (out: string) => WrkResult,
): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const stop = () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    };
    o.onStart?.(stop);
    const timer = setTimeout(stop, (o.seconds + 15) * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${name} exited with ${code}: ${err || out}`));
      try {
        resolve(parse(out));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/** One bounded wrk run. */
export function runWrk(wrk: string, o: LoadOptions): Promise<WrkResult> {
  const args = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, '--latency', '--timeout', '5s'];
  for (const h of o.headers ?? []) args.push('-H', h);
  if (o.method !== undefined || o.body !== undefined) args.push('-s', wrkScript(o.method ?? 'GET', o.body));
  args.push(o.url);
  return runLoadProcess('wrk', wrk, args, o, parseWrk);
}

/** A wrk Lua script setting the method and body (wrk has no flags for them); written once per method and body. */
function wrkScript(method: string, body: string | undefined): string {
  if (body !== undefined && !/^[\x20-\x7e]*$/.test(body)) throw new Error('wrk bodies are printable ASCII here');
  const lua = `wrk.method = ${JSON.stringify(method)}\n${body === undefined ? '' : `wrk.body = ${JSON.stringify(body)}\n`}`;
  const path = join(tmpdir(), `gatehouse-bench-wrk-${createHash('sha256').update(lua).digest('hex').slice(0, 16)}.lua`);
  if (!existsSync(path)) writeFileSync(path, lua);
  return path;
}
