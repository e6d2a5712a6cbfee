import { describe, expect, it } from 'vitest';
import { closedPortUrl, echo, send, startBackend, startSlowBackend } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { sleep } from '../helpers/token-kit.ts';

const breaker = { failures: 3, windowSeconds: 30, cooldownSeconds: 1 };

/** A backend that answers 500 while `failing`, else echoes after `delayMs`. */
const control = { failing: true, delayMs: 0 };
const flaky = () =>
  startBackend((req, res, rec) => {
    req.resume();
    if (control.failing) {
      res.writeHead(500).end('boom');
      return true;
    }
    setTimeout(() => echo(res, rec), control.delayMs);
    return true;
  });

const breakerLines = (logs: ReadonlyArray<Record<string, unknown>>) =>
  logs.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('circuit ')).map((l) => l['msg']);

describe('circuit breaker: closed → open → half-open → closed', () => {
  const proxy = useBareProxy({ backend: flaky, mapping: { circuitBreaker: breaker } });

  it('opens after N consecutive 5xx answers: 503 backend_unavailable with Retry-After, the backend not called', async () => {
    for (let i = 0; i < 3; i++) expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    const before = proxy.backend.requests.length;
    const refused = await send(proxy.url, { path: '/api/x' });
    expectError(refused, 503, 'backend_unavailable');
    expect(Number(refused.headers['retry-after'])).toBe(1);
    expect(proxy.backend.requests.length).toBe(before);
    expect(proxy.gh.app.backends.snapshot().breakers[0]).toMatchObject({
      backend: proxy.backend.url,
      state: 'open',
      mappings: ['mappings[0]'],
    });
  });

  it('after the cool-down one probe goes through while the others are refused; its success closes the circuit', async () => {
    control.failing = false;
    control.delayMs = 300;
    await sleep(1100);
    const before = proxy.backend.requests.length;
    const probe = send(proxy.url, { path: '/api/probe' });
    // The probe is with the backend (for 300 ms) while the others arrive.
    await proxy.backend.waitForRequests(before + 1);
    const [second, third] = await Promise.all([send(proxy.url, { path: '/api/x' }), send(proxy.url, { path: '/api/x' })]);
    expectError(second, 503, 'backend_unavailable');
    expectError(third, 503, 'backend_unavailable');
    expect((await probe).status).toBe(200);
    expect(proxy.backend.requests.length).toBe(before + 1);
    control.delayMs = 0;
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(200);
    expect(proxy.gh.app.backends.snapshot().breakers[0]?.state).toBe('closed');
    // Each change logged once, never once per refused request.
    expect(breakerLines(proxy.gh.logs)).toEqual(['circuit opened', 'circuit half-open', 'circuit closed']);
    // The refusals have their access lines; no error line each (the cause was logged once, as the circuit opened).
    expect(proxy.gh.logs.filter((l) => l['msg'] === 'proxy error' && l['code'] === 'backend_unavailable')).toEqual([]);
  });

  it('a failed probe opens the circuit again; a success in between resets the count', async () => {
    control.failing = true;
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    control.failing = false;
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(200);
    control.failing = true;
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    // Two failures since the success: still closed.
    expect(proxy.gh.app.backends.snapshot().breakers[0]?.state).toBe('closed');
    expect((await send(proxy.url, { path: '/api/x' })).status).toBe(500);
    expectError(await send(proxy.url, { path: '/api/x' }), 503, 'backend_unavailable');
    await sleep(1100);
    expect((await send(proxy.url, { path: '/api/probe' })).status).toBe(500);
    expectError(await send(proxy.url, { path: '/api/x' }), 503, 'backend_unavailable');
    expect(proxy.gh.app.backends.snapshot().breakers[0]?.state).toBe('open');
  });

  it('its state survives a config reload', async () => {
    const { app, config } = proxy.gh;
    await app.reload({ ...config, routing: app.runtime().config.routing });
    expectError(await send(proxy.url, { path: '/api/x' }), 503, 'backend_unavailable');
    expect(app.backends.snapshot().breakers[0]?.state).toBe('open');
  });
});

describe('circuit breaker: connection failures and timeouts count', () => {
  const proxy = useBareProxy({
    backends: { slow: () => startSlowBackend(Infinity), dead: async () => ({ url: await closedPortUrl(), close: async () => {} }) },
    routes: (_url, b) => [
      { frontendHost: '*', pathPrefix: '/dead', backend: b.dead.url, auth: 'none', circuitBreaker: { ...breaker, failures: 2 } },
      {
        frontendHost: '*',
        pathPrefix: '/slow',
        backend: b.slow.url,
        auth: 'none',
        timeoutMs: 200,
        circuitBreaker: { ...breaker, failures: 2 },
      },
    ],
  });

  it('connection refused twice: 502, 502, then 503 at once', async () => {
    expectError(await send(proxy.url, { path: '/api/dead' }), 502, 'bad_gateway');
    expectError(await send(proxy.url, { path: '/api/dead' }), 502, 'bad_gateway');
    expectError(await send(proxy.url, { path: '/api/dead' }), 503, 'backend_unavailable');
  });

  it('two timeouts: 504, 504, then 503 without waiting for the backend', async () => {
    expectError(await send(proxy.url, { path: '/api/slow' }), 504, 'gateway_timeout');
    expectError(await send(proxy.url, { path: '/api/slow' }), 504, 'gateway_timeout');
    const before = proxy.backends.slow.requests.length;
    expectError(await send(proxy.url, { path: '/api/slow' }), 503, 'backend_unavailable');
    expect(proxy.backends.slow.requests.length).toBe(before);
  });
});
