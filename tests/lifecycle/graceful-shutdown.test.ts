import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatehouse } from '../helpers/gatehouse.ts';

/** app.close() (what SIGTERM runs): stop accepting, let in-flight requests finish up to the deadline, close WebSockets with 1001. */
describe('graceful shutdown', () => {
  let backend: Server;
  let backendUrl: string;
  const noIdp = { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused' };

  beforeAll(async () => {
    backend = createServer((req, res) => {
      const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => res.end(`done after ${delay}`), delay);
    });
    const wss = new WebSocketServer({ server: backend });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    backend.closeAllConnections();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  const yaml = () => `mappings:\n  - frontendHost: "*"\n    backend: "${backendUrl}"\n    auth: none\n`;

  it('finishes an in-flight request, refuses new connections and closes WebSockets with 1001', async () => {
    const gh = await startGatehouse({ yaml: yaml(), env: { ...noIdp, SHUTDOWN_TIMEOUT_MS: '5000' } });
    const ws = new WebSocket(`ws://127.0.0.1:${gh.port}/api/ws`);
    await new Promise((r) => ws.once('open', r));
    const wsClosed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    const inFlight = fetch(`${gh.url}/api/slow?delay=700`);
    await new Promise((r) => setTimeout(r, 150));
    const closing = gh.close();
    expect(await wsClosed).toBe(1001);
    await new Promise((r) => setTimeout(r, 50));
    await expect(fetch(`${gh.url}/api/slow?delay=0`)).rejects.toThrow();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('done after 700');
    const answeredAt = Date.now();
    await closing;
    // The drained keep-alive connection is closed at once, not when the client gives it up.
    expect(Date.now() - answeredAt).toBeLessThan(1000);
  });

  it('cuts requests still running at the deadline', async () => {
    const gh = await startGatehouse({ yaml: yaml(), env: { ...noIdp, SHUTDOWN_TIMEOUT_MS: '300' } });
    const inFlight = fetch(`${gh.url}/api/slow?delay=3000`)
      .then((r) => r.text())
      .then(
        () => 'completed',
        (err: unknown) => err,
      );
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await gh.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await inFlight).toBeInstanceOf(Error);
  });
});
