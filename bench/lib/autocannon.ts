import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { LoadOptions, WrkResult } from './wrk.ts';

/**
 * The load client when wrk is not installed: autocannon, run as its own process like wrk (never inside
 * the bench's event loop). It is a Node client and costs more CPU per request than wrk on the cores the
 * servers share, and it reports latency in whole milliseconds: its figures are comparable within a run,
 * not with wrk runs.
 */

interface AutocannonJson {
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly requests: { readonly total: number };
  readonly latency: { readonly p50: number; readonly p99: number };
}

export function autocannonPath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  } catch {
    return undefined;
  }
}

export function parseAutocannon(out: string): WrkResult {
  const d = JSON.parse(out) as AutocannonJson;
  const requests = d.requests?.total;
  const p50 = d.latency?.p50;
  const p99 = d.latency?.p99;
  if (typeof requests !== 'number' || typeof p50 !== 'number' || typeof p99 !== 'number' || !(d.duration > 0)) {
    throw new Error(`unreadable autocannon output:\n${out.slice(0, 500)}`);
  }
  return { rps: requests / d.duration, p50, p99, requests, non2xx: d.non2xx ?? 0, socketErrors: (d.errors ?? 0) + (d.timeouts ?? 0) };
}

/** One bounded autocannon run (killed if it overruns its duration by 15 s). */
export function runAutocannon(script: string, o: LoadOptions): Promise<WrkResult> {
  const args = [script, '-c', String(o.connections), '-d', String(o.seconds), '-t', '5', '-j'];
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(o.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const stop = () => { if (child.exitCode === null) child.kill('SIGKILL'); };
    o.onStart?.(stop);
    const timer = setTimeout(stop, (o.seconds + 15) * 1000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}: ${err || out}`));
      try {
        resolve(parseAutocannon(out));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}
