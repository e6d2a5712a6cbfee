import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamPool, type UpstreamPool } from '../../src/proxy/upstream/client.ts';
import { collectUpstream, type UpstreamOutcome } from '../helpers/upstream-call.ts';

/** The pool on its own, against a real loopback backend: queueing, limits, idle closing, shutdown. */

function call(pool: UpstreamPool, path: string, timeoutMs = 5000): Promise<UpstreamOutcome> {
  return collectUpstream(pool, { method: 'GET', path, headers: [], body: { kind: 'none' }, timeoutMs });
}

describe('upstream pool', () => {
  let server: Server;
  let origin: string;
  const open = new Set<Socket>();
  let maxOpen = 0;
  const hanging: ServerResponse[] = [];
  const gathered: ServerResponse[] = [];
  let gatherTarget = 0;

  beforeAll(async () => {
    server = createServer({ keepAliveTimeout: 10_000 }, (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/hang') return void hanging.push(res);
      if (req.url === '/gather') {
        // Held until `gatherTarget` requests are open at once, as long-lived streams would be.
        gathered.push(res);
        if (gathered.length === gatherTarget) for (const r of gathered.splice(0)) r.end('released');
        return;
      }
      const delay = req.url === '/slow' ? 50 : 0;
      setTimeout(() => {
        if (req.url === '/hint') res.setHeader('keep-alive', 'timeout=1');
        res.end(`answer ${req.url}`);
      }, delay);
    });
    server.on('connection', (socket: Socket) => {
      open.add(socket);
      maxOpen = Math.max(maxOpen, open.size);
      socket.on('close', () => open.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const waitFor = async (check: () => boolean, ms = 2000) => {
    const until = Date.now() + ms;
    while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return check();
  };

  it('never opens more than `connections`: the rest wait in order and are all answered', async () => {
    const pool = createUpstreamPool(origin, { connections: 2 });
    const before = open.size;
    maxOpen = before;
    const outcomes = await Promise.all(Array.from({ length: 7 }, () => call(pool, '/slow')));
    expect(outcomes.map((o) => o.status)).toEqual(Array(7).fill(200));
    expect(outcomes.every((o) => o.body === 'answer /slow')).toBe(true);
    expect(maxOpen - before).toBe(2);
    await pool.close();
    expect(await waitFor(() => open.size === 0)).toBe(true);
  });

  it('by default no cap: 200 responses held open at once are all served (long-lived streams do not starve the rest), and at most maxIdle stay', async () => {
    const pool = createUpstreamPool(origin, { maxIdle: 50 });
    gatherTarget = 200;
    const outcomes = await Promise.all(Array.from({ length: 200 }, () => call(pool, '/gather', 3000)));
    expect(outcomes.filter((o) => o.body === 'released')).toHaveLength(200);
    expect(await waitFor(() => open.size <= 50)).toBe(true);
    expect(open.size).toBeGreaterThan(0);
    await pool.close();
    expect(await waitFor(() => open.size === 0)).toBe(true);
  });

  it('a request waiting for a connection times out like one waiting for an answer', async () => {
    const pool = createUpstreamPool(origin, { connections: 1 });
    const first = call(pool, '/hang', 5000);
    const second = await call(pool, '/slow', 200);
    expect(second.error?.code).toBe('UPSTREAM_HEADERS_TIMEOUT');
    hanging.shift()?.end('late');
    expect((await first).status).toBe(200);
    await pool.close();
  });

  it('closes idle connections after keepAliveTimeoutMs, and sooner when the backend hints a shorter timeout', async () => {
    const pool = createUpstreamPool(origin, { keepAliveTimeoutMs: 150 });
    expect((await call(pool, '/x')).status).toBe(200);
    expect(open.size).toBe(1);
    expect(await waitFor(() => open.size === 0, 1000)).toBe(true);

    const hinted = createUpstreamPool(origin, { keepAliveTimeoutMs: 60_000 });
    const started = Date.now();
    expect((await call(hinted, '/hint')).status).toBe(200);
    expect(await waitFor(() => open.size === 0, 2000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000); // "timeout=1" minus Gatehouse's one-second margin
    await Promise.all([pool.close(), hinted.close()]);
  });

  it('close() waits for requests in flight and keeps no connection; one arriving later is answered on a connection closed after it', async () => {
    const pool = createUpstreamPool(origin);
    const inFlight = call(pool, '/slow');
    await new Promise((r) => setTimeout(r, 10));
    let closed = false;
    const closing = pool.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(false);
    expect((await inFlight).status).toBe(200);
    await closing;
    expect(await waitFor(() => open.size === 0)).toBe(true);
    const late = await call(pool, '/late');
    expect(late).toMatchObject({ status: 200, body: 'answer /late' });
    expect(await waitFor(() => open.size === 0, 500)).toBe(true);
  });
});
