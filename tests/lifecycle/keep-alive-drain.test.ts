import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { startGatehouse, writeConfigFile } from '../helpers/gatehouse.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { startMain } from '../helpers/main-process.ts';
import { freePort } from '../helpers/ports.ts';
import { ResponseReader, type RawResponse } from '../helpers/raw-http.ts';

/** What a fleet of keep-alive clients saw: a request written and never answered is a failure, whatever cut it. */
interface Tally {
  written: number;
  answered: number;
  /** Clients that have had an answer: their connection was accepted (before that it may sit in the backlog). */
  started: number;
  /** Answers saying Connection: close. */
  closing: number;
  /** Connections the server closed after promising keep-alive: a client may have had its next request on the wire. */
  closedAfterKeepAlive: number;
  failures: string[];
}

const newTally = (): Tally => ({ written: 0, answered: 0, started: 0, closing: 0, closedAfterKeepAlive: 0, failures: [] });

/** Closing a listener resets the connections still in its backlog (never accepted, never read): start once all are in. */
async function allStarted(tally: Tally, clients: number): Promise<void> {
  for (let i = 0; i < 400 && tally.started < clients; i++) await sleep(25);
  expect(tally.started, JSON.stringify(tally)).toBe(clients);
  await sleep(100);
}

const says = (r: RawResponse, name: string) => (r.headers.get(name) ?? []).join(',').toLowerCase();

/**
 * One client: a keep-alive connection sending `depth` requests at a time (2: pipelined), the next batch as soon as
 * the last answer is in. A `Connection: close` answer ends the connection; a new one is opened while `mayConnect()`.
 * Resolves when the client stops: refused, told not to connect, or `stop()`.
 */
async function client(port: number, tally: Tally, o: { depth: number; mayConnect: () => boolean; stop: () => boolean }): Promise<void> {
  let answeredOnce = false;
  while (o.mayConnect() && !o.stop()) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const reader = new ResponseReader(() => 'GET');
      let sent = 0;
      let seen = 0;
      let endedByUs = false;
      let connected = false;
      let closing = false;
      const send = () => {
        let batch = '';
        for (let i = 0; i < o.depth; i++) {
          batch += `GET /api/item HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`;
          sent++;
        }
        tally.written += o.depth;
        socket.write(batch);
      };
      socket.on('connect', () => {
        connected = true;
        send();
      });
      socket.on('data', (chunk: Buffer) => {
        reader.push(chunk);
        while (seen < reader.responses.length) {
          const r = reader.responses[seen] as RawResponse;
          seen++;
          tally.answered++;
          if (!answeredOnce) {
            answeredOnce = true;
            tally.started++;
          }
          if (r.status !== 200) tally.failures.push(`status ${r.status}`);
          if (says(r, 'connection').includes('close')) {
            closing = true;
            tally.closing++;
          }
        }
        if (seen < sent || closing) return;
        if (!o.stop()) send();
        else {
          endedByUs = true;
          socket.end();
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (!connected && err.code === 'ECONNREFUSED') return resolve(true);
        tally.failures.push(`${err.code ?? err.message} with ${sent - seen} request(s) unanswered`);
      });
      socket.on('close', () => {
        if (connected && seen < sent && !socket.errored) tally.failures.push(`closed with ${sent - seen} request(s) unanswered`);
        if (connected && !closing && !endedByUs) tally.closedAfterKeepAlive++;
        resolve(false);
      });
    });
    if (refused) return;
  }
}

describe('draining keep-alive connections: every request a client wrote is answered, never reset', () => {
  let backend: TestBackend;
  let idp: TestIdp;

  beforeAll(async () => {
    backend = await startBackend((_req, res) => {
      setTimeout(() => res.end('ok'), 5);
      return true;
    });
  });
  afterAll(async () => {
    await backend.close();
    await idp?.close();
  });

  const yaml = () => `mappings:\n  - frontendHost: "*"\n    backend: "${backend.url}"\n    auth: none\n`;

  it('app.close() under load: in-flight, next and pipelined requests are answered with Connection: close', async () => {
    const gh = await startGatehouse({
      yaml: yaml(),
      env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused', SHUTDOWN_TIMEOUT_MS: '5000' },
    });
    const tally = newTally();
    const hardStop = Date.now() + 15_000;
    const stop = () => Date.now() > hardStop;
    let open = true;
    const clients = Array.from({ length: 8 }, (_, i) => client(gh.port, tally, { depth: i < 2 ? 2 : 1, mayConnect: () => open, stop }));
    await allStarted(tally, 8);
    // Only the connections open now are drained: none is opened after the listener closes.
    open = false;
    const started = Date.now();
    await gh.close();
    const closedIn = Date.now() - started;
    await Promise.all(clients);

    expect(tally.failures, JSON.stringify(tally)).toEqual([]);
    expect(tally.answered).toBe(tally.written);
    expect(tally.answered).toBeGreaterThan(16);
    expect(tally.closing).toBeGreaterThan(0);
    expect(tally.closedAfterKeepAlive, JSON.stringify(tally)).toBe(0);
    expect(closedIn, JSON.stringify(tally)).toBeLessThan(2000);
  });

  it('app.beginShutdown(): /readyz 503 shutting down at once; /api still served, new connections too, each answer closing', async () => {
    const gh = await startGatehouse({ yaml: yaml(), env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused' } });
    try {
      const before = await fetch(`${gh.url}/api/item`);
      expect(before.headers.get('connection')).toBe('keep-alive');
      await before.text();
      gh.app.beginShutdown();
      const ready = await fetch(`${gh.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({
        ok: false,
        error: 'not_ready',
        failed: ['shutdown'],
        checks: { shutdown: 'fail' },
        reason: 'shutting down',
      });
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${gh.url}/api/item`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('ok');
        expect(res.headers.get('connection')).toBe('close');
      }
    } finally {
      await gh.close();
    }
  });

  it('during the delay a slow client is not taken for an idle connection: a request sent 600 ms after connecting, in two parts, is answered', async () => {
    const gh = await startGatehouse({ yaml: yaml(), env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused' } });
    try {
      gh.app.beginShutdown();
      const socket = connect(gh.port, '127.0.0.1');
      const reader = new ResponseReader(() => 'GET');
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', () => {});
      await sleep(600);
      socket.write(`GET /api/item HTTP/1.1\r\nhost: 127.0.0.1:${gh.port}\r\n`);
      await sleep(600);
      socket.write('\r\n');
      for (let i = 0; i < 200 && reader.responses.length === 0; i++) await sleep(10);
      expect(reader.responses[0]?.status).toBe(200);
      expect(says(reader.responses[0] as RawResponse, 'connection')).toBe('close');
      socket.destroy();
    } finally {
      await gh.close();
    }
  });

  it('a WebSocket upgrade on a kept-alive connection after the drain began: 503 shutting_down with Connection: close', async () => {
    const gh = await startGatehouse({
      yaml: yaml(),
      env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused', SHUTDOWN_TIMEOUT_MS: '2000' },
    });
    const socket = connect(gh.port, '127.0.0.1');
    const reader = new ResponseReader(() => 'GET');
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.write(`GET /api/item HTTP/1.1\r\nhost: 127.0.0.1:${gh.port}\r\n\r\n`);
    for (let i = 0; i < 100 && reader.responses.length === 0; i++) await sleep(10);
    expect(says(reader.responses[0] as RawResponse, 'connection')).toBe('keep-alive');
    const closing = gh.close();
    socket.write(
      `GET /api/ws HTTP/1.1\r\nhost: 127.0.0.1:${gh.port}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
        'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n',
    );
    await ended;
    await closing;
    expect(reader.responses).toHaveLength(2);
    const refused = reader.responses[1] as RawResponse;
    expect(refused.status).toBe(503);
    expect(says(refused, 'connection')).toBe('close');
    expect((JSON.parse(refused.body.toString('utf8')) as { error: string }).error).toBe('shutting_down');
  });

  it('an event stream still open at the deadline ends cleanly (last chunk), not cut', async () => {
    const events = await startBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('data: hello\n\n');
      return true;
    });
    const gh = await startGatehouse({
      yaml: `mappings:\n  - frontendHost: "*"\n    backend: "${events.url}"\n    auth: none\n`,
      env: { OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'unused', SHUTDOWN_TIMEOUT_MS: '300' },
    });
    try {
      const res = await fetch(`${gh.url}/api/events`);
      expect(res.headers.get('content-type')).toBe('text/event-stream');
      const body = res.text().then(
        (text) => ({ text }),
        (err: unknown) => ({ cut: String(err) }),
      );
      await events.waitForRequests(1);
      await sleep(50);
      const started = Date.now();
      await gh.close();
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await body).toEqual({ text: 'data: hello\n\n' });
      // The backend's exchange was abandoned with it, not left open.
      await events.waitForAbort(0, 2000);
    } finally {
      await events.close();
    }
  });

  it('SIGTERM: /readyz is 503 at once while /api still serves for SHUTDOWN_DELAY_SECONDS, no request is reset, exit 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    idp = await startIdp({ gatehouseBaseUrls: [url] });
    const main = startMain({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      APP_BASE_URL: url,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: idp.clientId,
      OIDC_CLIENT_SECRET: idp.clientSecret,
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: `drain-${port}:`,
      GATEHOUSE_CONFIG: writeConfigFile(yaml()),
      SHUTDOWN_DELAY_SECONDS: '2',
      SHUTDOWN_TIMEOUT_MS: '3000',
      LOG_LEVEL: 'warn',
    });
    try {
      let ready = 0;
      for (let i = 0; i < 400 && ready !== 200; i++) {
        ready = await fetch(`${url}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (ready !== 200) await sleep(50);
      }
      expect(ready, main.output()).toBe(200);

      // The load balancer: routes new connections here until it sees /readyz fail.
      let routed = true;
      const readyzDuringDelay: Array<{ status: number; reason?: string }> = [];
      const tally = newTally();
      const hardStop = Date.now() + 15_000;
      const clients = Array.from({ length: 8 }, (_, i) =>
        client(port, tally, { depth: i < 2 ? 2 : 1, mayConnect: () => routed, stop: () => Date.now() > hardStop }),
      );
      await allStarted(tally, 8);
      const answeredBefore = tally.answered;
      main.child.kill('SIGTERM');
      const signalledAt = Date.now();
      while (routed && Date.now() - signalledAt < 1500) {
        const r = await fetch(`${url}/readyz`);
        const body = (await r.json()) as { reason?: string };
        if (r.status === 503) {
          routed = false;
          readyzDuringDelay.push({ status: r.status, ...(body.reason ? { reason: body.reason } : {}) });
        } else await sleep(20);
      }
      routed = false;
      const code = await Promise.race([main.exited, sleep(8000).then(() => 'timeout' as const)]);
      await Promise.all(clients);

      expect(readyzDuringDelay).toEqual([{ status: 503, reason: 'shutting down' }]);
      expect(tally.failures, JSON.stringify(tally)).toEqual([]);
      expect(tally.answered).toBe(tally.written);
      expect(tally.answered).toBeGreaterThan(answeredBefore);
      expect(tally.closing).toBeGreaterThan(0);
      expect(tally.closedAfterKeepAlive, JSON.stringify(tally)).toBe(0);
      expect(code, main.output()).toBe(0);
    } finally {
      if (main.child.exitCode === null) main.child.kill('SIGKILL');
    }
  });
});
