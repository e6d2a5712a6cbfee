import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

/**
 * Waits for "Debugger listening on ws://…" in a process's log (node --inspect=127.0.0.1:0 prints it on stderr)
 * and returns that URL.
 */
export async function inspectorUrl(logPath: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(logPath, 'utf8');
    } catch {
      // not written yet
    }
    // The last one: a retried start-up appends to the same log.
    const found = [...text.matchAll(/Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+)/g)].pop()?.[1];
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no inspector URL in ${logPath}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Records a V8 CPU profile of another Node process over the inspector protocol while `during()` runs, so the
 * profile holds the measured window only (no start-up, no warm-up). Returns the .cpuprofile JSON text.
 */
export async function profileWhile(url: string, during: () => Promise<void>, samplingIntervalUs = 500): Promise<string> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) p?.reject(new Error(msg.error.message));
    else p?.resolve(msg.result);
  });
  const call = (method: string, params?: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, ...(params ? { params } : {}) }));
    });
  try {
    await call('Profiler.enable');
    await call('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
    await call('Profiler.start');
    await during();
    const result = (await call('Profiler.stop')) as { profile: unknown };
    return JSON.stringify(result.profile);
  } finally {
    ws.terminate();
  }
}
