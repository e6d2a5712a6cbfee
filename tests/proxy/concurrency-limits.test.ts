import { describe, expect, it } from 'vitest';
import { closed, echo, openWs, send, startBackend, startWsBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { waitUntil } from '../helpers/token-kit.ts';
import type { RouteGuard } from '../../src/proxy/backends/guard.ts';

/** /slow answers after 800 ms, /hang never, /reset cuts the connection, /sse streams until the client leaves. */
const behaviours = () =>
  startBackend((req, res, rec) => {
    req.resume();
    const path = (req.url ?? '').replace(/\?.*/, '');
    if (path === '/slow') setTimeout(() => echo(res, rec), 800);
    else if (path === '/hang') return true;
    else if (path === '/reset') req.socket.destroy();
    else if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: hello\n\n');
      const tick = setInterval(() => res.write(': keep-alive\n\n'), 200);
      res.on('close', () => clearInterval(tick));
    } else echo(res, rec);
    return true;
  });

/** Opens an event stream through Gatehouse and reads its first event; `stop` leaves it, as a closed tab does. */
async function openStream(url: string): Promise<{ status: number; body?: unknown; stop: () => void }> {
  const ac = new AbortController();
  const res = await fetch(`${url}/api/sse`, { signal: ac.signal });
  if (res.status !== 200) return { status: res.status, body: await res.json(), stop: () => ac.abort() };
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  return { status: 200, stop: () => ac.abort() };
}

describe('maxConcurrent and maxStreams with slow backends', () => {
  const proxy = useBareProxy({
    backend: behaviours,
    backends: { ws: () => startWsBackend() },
    routes: (url, b) => [
      { frontendHost: '*', backend: url, auth: 'none', maxConcurrent: 2, maxStreams: 1, timeoutMs: 2500 },
      { frontendHost: '*', pathPrefix: '/ws', backend: b.ws.url, auth: 'none', maxStreams: 1 },
    ],
  });
  const guard = (i = 0) => proxy.gh.app.runtime().guards[i + 1] as RouteGuard;
  const counts = (i = 0) => ({ active: guard(i).active, streams: guard(i).streams });
  const released = () => waitUntil(() => guard(0).active === 0 && guard(0).streams === 0, 3000, 'every count released');

  it('excess requests get 503 too_busy at once, never queued; the count comes back', async () => {
    const before = proxy.backend.requests.length;
    const timed = () => send(proxy.url, { path: '/api/slow' }).then((res) => ({ res, at: Date.now() }));
    const inFlight = [timed(), timed()];
    await proxy.backend.waitForRequests(before + 2);
    const third = await timed();
    const [one, two] = await Promise.all(inFlight);
    expect([one?.res.status, two?.res.status]).toEqual([200, 200]);
    expectError(third.res, 503, 'too_busy');
    expect(third.res.headers['retry-after']).toBe('1');
    // Answered while the two in flight were still waiting on the backend: not queued behind them.
    expect(third.at).toBeLessThan(Math.min(one?.at ?? 0, two?.at ?? 0));
    expect(proxy.backend.requests.length).toBe(before + 2);
    await released();
    expect(
      (await Promise.all([send(proxy.url, { path: '/api/slow' }), send(proxy.url, { path: '/api/slow' })])).map((r) => r.status),
    ).toEqual([200, 200]);
  });

  it('released when the client goes away mid-request', async () => {
    const n = proxy.backend.requests.length;
    const gone = [0, 1].map(() =>
      send(proxy.url, { path: '/api/hang', timeoutMs: 150 }).then(
        () => 'answered',
        () => 'aborted',
      ),
    );
    expect(await Promise.all(gone)).toEqual(['aborted', 'aborted']);
    await proxy.backend.waitForAbort(n);
    await proxy.backend.waitForAbort(n + 1);
    await released();
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(200);
  });

  it('released when the backend cuts the connection (502) and when it times out (504)', async () => {
    const cut = await Promise.all([send(proxy.url, { path: '/api/reset' }), send(proxy.url, { path: '/api/reset' })]);
    for (const r of cut) expectError(r, 502, 'bad_gateway');
    await released();
    const late = await Promise.all([send(proxy.url, { path: '/api/hang' }), send(proxy.url, { path: '/api/hang' })]);
    for (const r of late) expectError(r, 504, 'gateway_timeout');
    await released();
    expect(counts()).toEqual({ active: 0, streams: 0 });
  });

  it('event streams count apart (maxStreams), and a stream left by its client is released', async () => {
    const first = await openStream(proxy.url);
    expect(first.status).toBe(200);
    expect(counts()).toEqual({ active: 0, streams: 1 });
    // Open streams do not take request places: two requests still fit.
    expect(
      (await Promise.all([send(proxy.url, { path: '/api/slow' }), send(proxy.url, { path: '/api/slow' })])).map((r) => r.status),
    ).toEqual([200, 200]);
    const second = await openStream(proxy.url);
    expect(second.status).toBe(503);
    expect(second.body).toMatchObject({ error: 'too_busy' });
    first.stop();
    await released();
    const third = await openStream(proxy.url);
    expect(third.status).toBe(200);
    third.stop();
    await released();
  });

  it('WebSockets count against maxStreams from the upgrade to the close', async () => {
    const wsUrl = `${proxy.url.replace('http', 'ws')}/api/ws/chat`;
    const one = await openWs(wsUrl);
    if (!one.ok) throw new Error(`upgrade refused: ${one.status}`);
    expect(counts(1).streams).toBe(1);
    const refused = await openWs(wsUrl);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expectError(refused, 503, 'too_busy');
    await waitUntil(() => counts(1).streams === 1, 3000, 'the refused upgrade to give its place back');
    one.ws.close(1000, 'done');
    await closed(one.ws);
    await waitUntil(() => counts(1).streams === 0, 3000, 'the closed WebSocket to give its place back');
    const again = await openWs(wsUrl);
    expect(again.ok).toBe(true);
    if (again.ok) {
      again.ws.close(1000, 'done');
      await closed(again.ws);
    }
    await waitUntil(() => counts(1).streams === 0, 3000, 'released again');
  });
});
