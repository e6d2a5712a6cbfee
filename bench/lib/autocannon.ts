import { createRequire } from 'node:module';
import { runLoadProcess, type LoadOptions, type WrkResult } from './wrk.ts';

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

/** One bounded autocannon run. */
export function runAutocannon(script: string, o: LoadOptions): Promise<WrkResult> {
  const args = [script, '-c', String(o.connections), '-d', String(o.seconds), '-t', '5', '-j'];
  for (const h of o.headers ?? []) args.push('-H', h);
  if (o.method !== undefined) args.push('-m', o.method);
  if (o.body !== undefined) args.push('-b', o.body);
  args.push(o.url);
  return runLoadProcess('autocannon', process.execPath, args, o, parseAutocannon);
}
