import { request } from 'node:http';
import WebSocket from 'ws';
import { median, percentile } from './stats.ts';

/**
 * Time from sending an SSE request to reading its first event, in ms. A fresh connection each time
 * (an EventSource opens its own), torn down once the event arrived.
 */
export function sseFirstEvent(url: string, headers: Record<string, string>, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`no SSE event from ${url} within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        clearTimeout(timer);
        res.resume();
        req.destroy();
        return reject(new Error(`SSE ${url} answered ${res.statusCode}`));
      }
      let seen = '';
      res.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        if (seen.includes('\n\n')) {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          clearTimeout(timer);
          req.destroy();
          resolve(ms);
        }
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

export interface SseTarget {
  readonly url: string;
  readonly headers: Record<string, string>;
}

/**
 * First-event delay for several targets, interleaved request by request so that noise from other work on
 * the machine lands on all of them alike. Median and p90 per target, in ms, after `warmup` unmeasured rounds.
 */
export async function sseCompare(targets: readonly SseTarget[], n: number, warmup = 5): Promise<Array<{ median: number; p90: number }>> {
  const samples = targets.map(() => [] as number[]);
  for (let i = 0; i < warmup + n; i++) {
    for (let t = 0; t < targets.length; t++) {
      const target = targets[t] as SseTarget;
      const ms = await sseFirstEvent(target.url, target.headers);
      if (i >= warmup) samples[t]?.push(ms);
    }
  }
  return samples.map((s) => ({ median: median(s), p90: percentile(s, 90) }));
}

export function openWs(url: string, headers: Record<string, string>, timeoutMs = 10_000): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: timeoutMs });
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => ws.terminate());
      resolve(ws);
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`WebSocket ${url} refused with ${res.statusCode}`));
    });
  });
}

/**
 * Round trip of `n` sequential 32-byte messages on one echo WebSocket per target, the targets taking turns
 * in batches of 50 messages (noise lands on all alike). Median and p99 per target, in ms.
 */
export async function wsCompare(targets: readonly SseTarget[], n: number): Promise<Array<{ median: number; p99: number }>> {
  const sockets: WebSocket[] = [];
  try {
    for (const t of targets) sockets.push(await openWs(t.url, t.headers));
    const payload = Buffer.alloc(32, 'x');
    const once = (ws: WebSocket) =>
      new Promise<number>((resolve, reject) => {
        const started = process.hrtime.bigint();
        const timer = setTimeout(() => reject(new Error('WebSocket echo timed out')), 5000);
        ws.once('message', () => {
          clearTimeout(timer);
          resolve(Number(process.hrtime.bigint() - started) / 1e6);
        });
        ws.send(payload);
      });
    for (const ws of sockets) for (let i = 0; i < 50; i++) await once(ws); // warm-up
    const samples = targets.map(() => [] as number[]);
    for (let done = 0; done < n; done += 50) {
      for (let t = 0; t < sockets.length; t++) {
        for (let i = 0; i < Math.min(50, n - done); i++) samples[t]?.push(await once(sockets[t] as WebSocket));
      }
    }
    return samples.map((s) => ({ median: median(s), p99: percentile(s, 99) }));
  } finally {
    for (const ws of sockets) ws.terminate();
  }
}

/** Opens `n` WebSockets in batches of `batch`, each waiting for its 101; returns them (the caller closes). */
export async function openMany(url: string, headers: Record<string, string>, n: number, batch: number): Promise<WebSocket[]> {
  const all: WebSocket[] = [];
  for (let i = 0; i < n; i += batch) {
    const size = Math.min(batch, n - i);
    const settled = await Promise.allSettled(Array.from({ length: size }, () => openWs(url, headers)));
    let failure: unknown;
    for (const s of settled) {
      if (s.status === 'fulfilled') all.push(s.value);
      else failure ??= s.reason;
    }
    if (failure !== undefined) {
      for (const ws of all) ws.terminate();
      throw failure;
    }
  }
  return all;
}
