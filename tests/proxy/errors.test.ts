import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { send, startBackend, startSlowBackend } from '../helpers/backends.ts';
import { closedPort, useBareProxy } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

describe('backend failures', () => {
  const proxy = useBareProxy({
    backends: {
      slow: () => startSlowBackend(1500),
      hang: () => startSlowBackend(Infinity),
      stall: () =>
        startBackend((req, res) => {
          req.resume();
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('partial');
          return true;
        }),
      reset: () =>
        startBackend((req, res) => {
          req.resume();
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 });
          res.write('half');
          setTimeout(() => res.socket?.destroy(), 20);
          return true;
        }),
      down: closedPort,
    },
    routes: (counter, { slow, hang, stall, reset, down }) => [
      { frontendHost: '*', pathPrefix: '/down', backend: down.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/nxdomain', backend: 'http://backend-host.invalid:8080/base', auth: 'none' },
      { frontendHost: '*', pathPrefix: '/slow', backend: slow.url, auth: 'none', timeoutMs: 300 },
      { frontendHost: '*', pathPrefix: '/hang', backend: hang.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/stall', backend: stall.url, auth: 'none', timeoutMs: 300 },
      { frontendHost: '*', pathPrefix: '/reset', backend: reset.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/upload', backend: counter, auth: 'none', timeoutMs: 300 },
    ],
  });

  const noInternals = (text: string) => {
    const downPort = new URL(proxy.backends.down.url).port;
    for (const secret of ['127.0.0.1', downPort, 'backend-host', '.invalid', 'ECONNREFUSED', 'ENOTFOUND', 'UND_ERR', 'stack']) {
      expect(text, secret).not.toContain(secret);
    }
  };

  it('connection refused → 502 bad_gateway, without the backend address in the body', async () => {
    const res = await send(proxy.url, { path: '/api/down/x' });
    expectError(res, 502, 'bad_gateway');
    noInternals(res.body.toString());
  });

  it('unresolvable backend host → 502 bad_gateway, without the host name in the body', async () => {
    const res = await send(proxy.url, { path: '/api/nxdomain/x' });
    expectError(res, 502, 'bad_gateway');
    noInternals(res.body.toString());
  });

  it('no response headers within timeoutMs → 504 gateway_timeout, and the backend request is cancelled', async () => {
    const before = proxy.backends.slow.requests.length;
    const started = Date.now();
    const res = await send(proxy.url, { path: '/api/slow/x' });
    const took = Date.now() - started;
    expectError(res, 504, 'gateway_timeout');
    noInternals(res.body.toString());
    // Deadlines are checked every 50 ms: a 300 ms timeout fires well before undici's one-second rounding did.
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(800);
    const rec = await proxy.backends.slow.waitForAbort(before);
    expect(rec.aborted).toBe(true);
  });

  it('a body that stalls beyond timeoutMs after the headers cuts the response short', async () => {
    const u = new URL(proxy.url);
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/stall/x', agent: false }, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', () => undefined);
        res.on('end', () => resolve('ended'));
        res.on('error', () => resolve('cut'));
        res.on('close', () => resolve(res.complete ? 'ended' : 'cut'));
      });
      req.on('error', () => resolve('cut'));
      req.end();
    });
    expect(outcome).toBe('cut');
    await new Promise((r) => setTimeout(r, 50));
    expect(proxy.backends.stall.last().aborted).toBe(true);
  });

  it('a backend reset mid-response cuts the client response instead of completing it', async () => {
    const u = new URL(proxy.url);
    const result = await new Promise<{ complete: boolean; body: string }>((resolve) => {
      let body = '';
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/reset/x', agent: false }, (res) => {
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('close', () => resolve({ complete: res.complete, body }));
        res.on('error', () => undefined);
      });
      req.on('error', () => resolve({ complete: false, body }));
      req.end();
    });
    expect(result.complete).toBe(false);
    expect(result.body).toBe('half');
  });

  it('a client that disconnects cancels the backend request', async () => {
    const before = proxy.backends.hang.requests.length;
    const u = new URL(proxy.url);
    const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/hang/x', agent: false });
    req.on('error', () => undefined);
    req.end();
    await proxy.backends.hang.waitForRequests(before + 1);
    req.destroy();
    const rec = await proxy.backends.hang.waitForAbort(before);
    expect(rec.aborted).toBe(true);
  });

  it('a client that disconnects mid-upload cancels the backend request', async () => {
    const before = proxy.backends.hang.requests.length;
    const u = new URL(proxy.url);
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: '/api/hang/upload',
      method: 'POST',
      headers: { 'content-length': '1000000' },
      agent: false,
    });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(64 * 1024));
    await proxy.backends.hang.waitForRequests(before + 1);
    req.destroy();
    const rec = await proxy.backends.hang.waitForAbort(before);
    expect(rec.complete).toBe(false);
  });

  it('an upload slower than timeoutMs is not cut while its body keeps flowing: the wait for the answer starts after it', async () => {
    const u = new URL(proxy.url);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/upload/x', method: 'POST', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      let sent = 0;
      // Six chunks 150 ms apart: 750 ms of upload against a 300 ms timeout, chunked (no Content-Length).
      const tick = setInterval(() => {
        req.write(Buffer.alloc(1000, 0x61));
        if (++sent === 6) {
          clearInterval(tick);
          req.end();
        }
      }, 150);
    });
    const res = await answer;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ method: 'POST', bodySize: 6000 });
  });

  it('stays up: /healthz answers after all of the above', async () => {
    const res = await send(proxy.url, { path: '/healthz' });
    expect(res.status).toBe(200);
  });
});
