import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFileConfig } from '../../src/config/load.ts';
import type { MappingConfig } from '../../src/config/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createBackends } from '../../src/proxy/backends/registry.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import {
  closed,
  nextMessage,
  openWs,
  send,
  startBackend,
  startWsBackend,
  type TestBackend,
  type TestWsBackend,
} from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';
import { sleep, waitUntil } from '../helpers/token-kit.ts';

/** A backend whose /health answers 200 or 503 as the test says; any other path is echoed. */
async function startSwitchableBackend(): Promise<TestBackend & { healthy: boolean; probes: () => number; traffic: () => number }> {
  const state = { healthy: true };
  const backend = await startBackend((req, res) => {
    if (req.url !== '/health') return false;
    req.resume();
    res.writeHead(state.healthy ? 200 : 503).end();
    return true;
  });
  // defineProperty, not Object.assign: assign would copy the getter's value, not the accessor.
  Object.defineProperty(backend, 'healthy', {
    get: () => state.healthy,
    set: (v: boolean) => {
      state.healthy = v;
    },
  });
  return Object.assign(backend as TestBackend & { healthy: boolean }, {
    probes: () => backend.requests.filter((r) => r.url === '/health').length,
    traffic: () => backend.requests.filter((r) => r.url !== '/health').length,
  });
}

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A webhook receiver that records every POST and answers 204. */
async function startWebhook(): Promise<TestBackend & { received: Received[] }> {
  const received: Received[] = [];
  const server = await startBackend((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
    return true;
  });
  return Object.assign(server, { received });
}

const check = { path: '/health', intervalSeconds: 1, timeoutMs: 2000, unhealthyAfter: 2, healthyAfter: 2, notifyAfterSeconds: 1 };

/** A loaded mapping (as createBackends().compile takes it) to `b` under /p<port>, health-checked every `intervalSeconds`. */
const probed = (b: { url: string; port: number }, intervalSeconds: number, extra: Partial<MappingConfig> = {}): MappingConfig => ({
  frontendHost: '*',
  pathPrefix: `/p${b.port}`,
  backend: b.url,
  auth: 'none',
  timeoutMs: 1000,
  websocket: false,
  forwardAccessToken: false,
  passAuthorization: false,
  healthCheck: { ...check, method: 'GET', intervalSeconds, healthyStatuses: ['2xx'] },
  ...extra,
});

/** The backend's line of gatehouse_backend_up in a /metrics scrape (on the main port, behind the admin token). */
const upGauge = async (gh: TestGatehouse, backend: string, token: string) => {
  const text = await (await fetch(`${gh.url}/metrics`, { headers: { 'x-admin-token': token } })).text();
  return text.split('\n').find((l) => l.startsWith(`gatehouse_backend_up{backend="${new URL(backend).origin}"}`));
};

const stateOf = (gh: TestGatehouse, backend: string) => gh.app.backends.snapshot().backends.find((b) => b.backend === backend)?.state;

describe('health checks: a backend that goes down and comes back, seen by two replicas', () => {
  const secret = randomBytes(24).toString('hex');
  let backend: Awaited<ReturnType<typeof startSwitchableBackend>>;
  let spare: TestBackend;
  let webhook: Awaited<ReturnType<typeof startWebhook>>;
  let a: TestGatehouse;
  let b: TestGatehouse;
  const events = (kind: string) => webhook.received.filter((r) => (JSON.parse(r.body) as { event: string }).event === kind);

  beforeAll(async () => {
    backend = await startSwitchableBackend();
    spare = await startBackend();
    webhook = await startWebhook();
    const yaml = mappingsYaml([
      { frontendHost: '*', pathPrefix: '/svc', backend: backend.url, auth: 'none', healthCheck: check },
      {
        frontendHost: '*',
        pathPrefix: '/withfb',
        backend: `${backend.url}/v1`,
        auth: 'none',
        healthCheck: check,
        fallback: `${spare.url}/spare`,
      },
    ]);
    const env = {
      REDIS_KEY_PREFIX: `hc${randomBytes(3).toString('hex')}:`,
      NOTIFY_WEBHOOK_URL: `${webhook.url}/hooks/gatehouse`,
      NOTIFY_WEBHOOK_SECRET: secret,
      ADMIN_TOKEN: secret + secret,
    };
    a = await startBareGatehouse(yaml, env);
    b = await startBareGatehouse(yaml, env);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await Promise.all([backend?.close(), spare?.close(), webhook?.close()]);
  });

  it('probes each backend once per check, marks it up, and forwards', async () => {
    await waitUntil(
      () => stateOf(a, backend.url) === 'up' && stateOf(b, backend.url) === 'up',
      5000,
      'both replicas to see the backend up',
    );
    const view = a.app.backends.snapshot();
    expect(view.replica).toMatch(/^.+:\d+$/);
    // Two mappings naming the same backend origin and check share one target and its state.
    expect(view.backends).toHaveLength(1);
    expect(view.backends[0]).toMatchObject({
      check: 'GET /health',
      state: 'up',
      consecutiveFailures: 0,
      mappings: ['mappings[0]', 'mappings[1]'],
    });
    expect(view.backends[0]?.latencyMs).toBeGreaterThanOrEqual(0);
    expect(view.backends[0]?.lastUp).toBeDefined();
    expect((await send(a.url, { path: '/api/svc/x' })).status).toBe(200);
  });

  it('down: 503 backend_unavailable at once without a fallback, the fallback with one; one notification for the cluster', async () => {
    backend.healthy = false;
    await waitUntil(() => stateOf(a, backend.url) === 'down' && stateOf(b, backend.url) === 'down', 6000, 'both replicas to see it down');
    const view = b.app.backends.snapshot().backends[0];
    expect(view).toMatchObject({ state: 'down', lastError: 'status 503' });
    expect(view?.consecutiveFailures).toBeGreaterThanOrEqual(2);
    expect(view?.downSince).toBeDefined();
    expect(await upGauge(b, backend.url, secret + secret)).toMatch(/ 0$/);

    const before = backend.traffic();
    const refused = await send(a.url, { path: '/api/svc/x' });
    expectError(refused, 503, 'backend_unavailable');
    expect(refused.headers['retry-after']).toBe('1');
    const viaFallback = await send(b.url, { path: '/api/withfb/y?q=1' });
    expect(viaFallback.status).toBe(200);
    expect(viaFallback.json()['url']).toBe('/spare/withfb/y?q=1');
    expect(backend.traffic()).toBe(before);

    await waitUntil(() => events('backend.down').length >= 1, 5000, 'the down notification');
    // Both replicas saw the outage past notifyAfterSeconds; give the slower one time to (wrongly) send its own.
    await sleep(1500);
    expect(events('backend.down')).toHaveLength(1);
  });

  it('recovered: back up after healthyAfter good probes, one recovery notification with the downtime, signed', async () => {
    backend.healthy = true;
    await waitUntil(() => stateOf(a, backend.url) === 'up' && stateOf(b, backend.url) === 'up', 6000, 'both replicas to see it up');
    expect((await send(a.url, { path: '/api/svc/x' })).status).toBe(200);
    expect(await upGauge(b, backend.url, secret + secret)).toMatch(/ 1$/);
    await waitUntil(() => events('backend.up').length >= 1, 5000, 'the recovery notification');
    await sleep(1500);
    expect(events('backend.up')).toHaveLength(1);
    expect(events('backend.down')).toHaveLength(1);

    const [down] = events('backend.down');
    const [up] = events('backend.up');
    const downEvent = JSON.parse(down?.body ?? '{}') as Record<string, unknown>;
    const upEvent = JSON.parse(up?.body ?? '{}') as Record<string, unknown>;
    expect(downEvent).toMatchObject({ backend: backend.url, check: `GET ${backend.url}/health` });
    expect(upEvent).toMatchObject({ backend: backend.url, downSince: downEvent['downSince'] });
    expect(upEvent['downtimeSeconds']).toBeGreaterThanOrEqual(2);
    for (const r of [down, up] as Received[]) {
      const ts = String(r.headers['x-gatehouse-timestamp']);
      const expected = `sha256=${createHmac('sha256', secret).update(`${ts}.${r.body}`).digest('hex')}`;
      expect(r.headers['x-gatehouse-signature']).toBe(expected);
      expect(r.headers['content-type']).toBe('application/json');
    }
  });
});

describe('health checks follow configuration changes and stop on close', () => {
  let kept: Awaited<ReturnType<typeof startSwitchableBackend>>;
  let removed: Awaited<ReturnType<typeof startSwitchableBackend>>;
  let added: Awaited<ReturnType<typeof startSwitchableBackend>>;
  let gh: TestGatehouse;
  const routing = (...backends: string[]) =>
    mappingsYaml(backends.map((url, i) => ({ frontendHost: '*', pathPrefix: `/b${i}`, backend: url, auth: 'none', healthCheck: check })));

  beforeAll(async () => {
    kept = await startSwitchableBackend();
    removed = await startSwitchableBackend();
    added = await startSwitchableBackend();
    gh = await startBareGatehouse(routing(kept.url, removed.url));
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([kept?.close(), removed?.close(), added?.close()]);
  });

  it('a reload probes new backends, drops removed ones, and keeps the state of unchanged ones', async () => {
    kept.healthy = false;
    await waitUntil(() => stateOf(gh, kept.url) === 'down' && stateOf(gh, removed.url) === 'up', 6000, 'kept down, removed up');
    const problems: string[] = [];
    const file = loadFileConfig(writeConfigFile(routing(kept.url, added.url)), {}, (p) => readFileSync(p, 'utf8'), problems);
    expect(problems).toEqual([]);
    await gh.app.reload({ ...gh.config, routing: file });

    // Not probed afresh: an outage does not read as "unknown" (and get traffic) because the file was edited.
    expect(stateOf(gh, kept.url)).toBe('down');
    expect(stateOf(gh, removed.url)).toBeUndefined();
    expectError(await send(gh.url, { path: '/api/b0/x' }), 503, 'backend_unavailable');
    await waitUntil(() => stateOf(gh, added.url) === 'up', 3000, 'the added backend to be probed');
    const removedProbes = removed.probes();
    await sleep(1300);
    expect(removed.probes()).toBe(removedProbes);
  });

  it('app.close() stops every probe', async () => {
    await gh.close();
    const counts = [kept.probes(), added.probes()];
    await sleep(1300);
    expect([kept.probes(), added.probes()]).toEqual(counts);
  });
});

describe('probes are spread', () => {
  it('N backends are not probed at once: first probes are offset within the interval', async () => {
    const backends = await Promise.all([0, 1, 2, 3].map(() => startSwitchableBackend()));
    const arrivals = new Map<number, number>();
    const started = Date.now();
    for (const [i, b] of backends.entries()) b.server.on('request', () => arrivals.has(i) || arrivals.set(i, Date.now() - started));
    // A fixed sequence where production draws Math.random(): offsets 0, ½, ¼ and ¾ of min(interval, 5 s).
    const draws = [0, 0.5, 0.25, 0.75];
    let n = 0;
    const registry = createBackends({
      log: createLogger({ level: 'silent' }),
      store: createMemoryStore(),
      notify: undefined,
      random: () => draws[n++ % draws.length] as number,
    });
    try {
      registry.compile({
        allowedOrigins: [],
        mappings: backends.map((b) => probed(b, 2)),
      });
      await waitUntil(() => arrivals.size === 4, 4000, 'a first probe at every backend');
      const times = [...arrivals.entries()].sort((x, y) => x[0] - y[0]).map(([, t]) => t);
      const sorted = [...times].sort((x, y) => x - y);
      for (let i = 1; i < sorted.length; i++) expect((sorted[i] as number) - (sorted[i - 1] as number)).toBeGreaterThan(300);
      // Each landed where its draw put it (0, 1000, 500, 1500 ms), give or take the timer's slack.
      expect(times[1] as number).toBeGreaterThan(times[2] as number);
    } finally {
      await registry.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

describe('WebSocket upgrades to a backend marked down', () => {
  // The WebSocket backend answers plain HTTP with 426, which this check does not count as healthy: it goes down.
  const wsCheck = { ...check, path: '/', healthyStatuses: ['2xx'] };
  let primary: TestWsBackend;
  let spare: TestWsBackend;
  let gh: TestGatehouse;

  beforeAll(async () => {
    primary = await startWsBackend();
    spare = await startWsBackend();
    gh = await startBareGatehouse(
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/live', backend: primary.url, auth: 'none', healthCheck: wsCheck },
        { frontendHost: '*', pathPrefix: '/chat', backend: primary.url, auth: 'none', healthCheck: wsCheck, fallback: spare.url },
      ]),
    );
  });
  afterAll(async () => {
    await gh?.close();
    await Promise.all([primary?.close(), spare?.close()]);
  });

  it('are refused with 503 backend_unavailable, or sent to the fallback', async () => {
    await waitUntil(() => stateOf(gh, primary.url) === 'down', 6000, 'the WebSocket backend to be marked down');
    const ws = gh.url.replace('http', 'ws');
    const refused = await openWs(`${ws}/api/live/feed`);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expectError(refused, 503, 'backend_unavailable');
      expect(refused.headers['retry-after']).toBe('1');
    }
    const viaFallback = await openWs(`${ws}/api/chat/room`);
    expect(viaFallback.ok).toBe(true);
    if (viaFallback.ok) {
      viaFallback.ws.send('hello');
      expect((await nextMessage(viaFallback.ws)).data.toString()).toBe('hello');
      viaFallback.ws.close(1000, 'done');
      await closed(viaFallback.ws);
    }
    expect(primary.upgrades).toHaveLength(0);
    expect(spare.upgrades.map((u) => u.url)).toEqual(['/chat/room']);
  });
});

describe('a probe reads the response head only', () => {
  it('closes its connection once the head is in, even when the body never ends', async () => {
    const endless = await startBackend((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('still going');
      return true;
    });
    const registry = createBackends({
      log: createLogger({ level: 'silent' }),
      store: createMemoryStore(),
      notify: undefined,
      random: () => 0,
    });
    try {
      registry.compile({
        allowedOrigins: [],
        mappings: [
          {
            frontendHost: '*',
            backend: endless.url,
            auth: 'none',
            timeoutMs: 1000,
            websocket: false,
            forwardAccessToken: false,
            passAuthorization: false,
            healthCheck: { ...check, method: 'GET', path: '/', timeoutMs: 10_000, intervalSeconds: 60, healthyStatuses: ['2xx'] },
          },
        ],
      });
      await endless.waitForRequests(1);
      // Not left to the 10 s timeout: the connection goes as soon as the status is known.
      await endless.waitForAbort(0, 1000);
      expect(registry.snapshot().backends[0]?.state).toBe('up');
    } finally {
      await registry.close();
      await endless.close();
    }
  });
});

describe('a reload that drops a backend', () => {
  it('drops its gatehouse_backend_up and gatehouse_backend_circuit_state series, and keeps the others', async () => {
    const [gone, kept] = await Promise.all([startSwitchableBackend(), startSwitchableBackend()]);
    const metrics = createMetrics({ defaultMetrics: false });
    const registry = createBackends({
      log: createLogger({ level: 'silent' }),
      store: createMemoryStore(),
      notify: undefined,
      random: () => 0,
      states: metrics,
    });
    const guarded = (b: { url: string; port: number }) =>
      probed(b, 60, { circuitBreaker: { failures: 5, windowSeconds: 10, cooldownSeconds: 10 } });
    const series = async () => (await metrics.render()).body.split('\n').filter((l) => /^gatehouse_backend_(up|circuit_state)\{/.test(l));
    try {
      registry.compile({ allowedOrigins: [], mappings: [guarded(gone), guarded(kept)] });
      await waitUntil(() => registry.snapshot().backends.every((b) => b.state === 'up'), 4000, 'both backends up');
      expect((await series()).filter((l) => l.includes(gone.url))).toHaveLength(4);
      registry.compile({ allowedOrigins: [], mappings: [guarded(kept)] });
      const after = await series();
      expect(after.filter((l) => l.includes(gone.url))).toEqual([]);
      expect(after).toContain(`gatehouse_backend_up{backend="${kept.url}"} 1`);
      expect(after).toContain(`gatehouse_backend_circuit_state{backend="${kept.url}",state="closed"} 1`);
    } finally {
      await registry.close();
      await Promise.all([gone.close(), kept.close()]);
    }
  });
});
