import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createTracing, tracingWanted, type Tracing } from '../../src/observability/tracing.ts';
import { echo, exchangeUntilClose, header, startBackend, statusesIn } from '../helpers/backends.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { useStage } from '../helpers/stage.ts';
import { sessionCookieOf } from '../helpers/token-kit.ts';

const run = promisify(execFile);
const src = (path: string) => fileURLToPath(new URL(`../../src/${path}`, import.meta.url));

describe('tracingWanted: the standard OTEL_* variables', () => {
  it.each([
    [{}, false],
    [{ OTEL_TRACES_EXPORTER: 'none' }, false],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' }, false],
    [{ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }, false],
    // Metrics or logs exporters alone ask for no traces.
    [{ OTEL_METRICS_EXPORTER: 'otlp' }, false],
  ])('%j → %s', (env, wanted) => {
    expect(tracingWanted(env)).toBe(wanted);
  });
});

/**
 * What a process loads from @opentelemetry/*, seen by a module resolve hook installed before anything else: the whole
 * app's module graph, then createTracing with `env`.
 */
async function loadedOtel(env: Record<string, string>): Promise<{ enabled: boolean; seen: string[] }> {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({
      resolve(specifier, context, next) {
        const r = next(specifier, context);
        if (r.url.includes('/@opentelemetry/')) seen.push(r.url);
        return r;
      },
    });
    await import(${JSON.stringify(src('app.ts'))});
    const { createTracing } = await import(${JSON.stringify(src('observability/tracing.ts'))});
    const { createLogger } = await import(${JSON.stringify(src('observability/logger.ts'))});
    const tracing = await createTracing(process.env, createLogger({ level: 'silent' }));
    await tracing.close();
    process.stdout.write(JSON.stringify({ enabled: tracing.enabled, seen }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    timeout: 20_000,
  });
  return JSON.parse(stdout) as { enabled: boolean; seen: string[] };
}

describe('the OpenTelemetry SDK is loaded only when enabled', () => {
  it('without OTEL_* the SDK is not loaded, by the app or by createTracing: only the no-op API prom-client requires', async () => {
    const out = await loadedOtel({});
    expect(out.enabled).toBe(false);
    // prom-client's process CPU metric requires @opentelemetry/api (for exemplars): a facade with nothing behind it.
    expect(out.seen.filter((u) => !u.includes('/node_modules/@opentelemetry/api/'))).toEqual([]);
  });

  it('with OTEL_TRACES_EXPORTER the SDK is loaded (the check above can see it)', async () => {
    const out = await loadedOtel({ OTEL_TRACES_EXPORTER: 'console' });
    expect(out.enabled).toBe(true);
    expect(out.seen.some((u) => u.includes('/@opentelemetry/sdk-node/'))).toBe(true);
  });

  it('createTracing does not even call its loader when tracing is not wanted', async () => {
    let loads = 0;
    const tracing = await createTracing({ OTEL_METRICS_EXPORTER: 'otlp' }, createLogger({ level: 'silent' }), {
      load: () => {
        loads++;
        return Promise.reject(new Error('must not load'));
      },
    });
    expect(tracing.enabled).toBe(false);
    expect(loads).toBe(0);
  });
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}

/** A real OTLP/HTTP receiver on loopback: collects what the SDK's exporter POSTs to /v1/traces (OTLP/JSON). */
async function startOtlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; paths: string[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
      };
      for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    paths,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('OpenTelemetry spans, enabled by OTEL_* and exported over OTLP/HTTP', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let tracing: Tracing;
  // The SDK reads process.env itself; this file runs in a process of its own (vitest forks).
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_SERVICE_NAME: 'gatehouse-test',
    });
    tracing = await createTracing(process.env, createLogger({ level: 'silent' }));
  });
  const stage = useStage(() => ({
    backends: {
      backend: () =>
        startBackend((req, res, rec) => {
          if (!req.url?.includes('/slow')) return;
          req.resume();
          req.on('end', () => setTimeout(() => echo(res, rec), 500));
          return true;
        }),
    },
    yaml: ({ backend }) =>
      mappingsYaml([
        { frontendHost: '*', pathPrefix: '/open', backend: backend.url, auth: 'none' },
        { frontendHost: '*', backend: backend.url },
      ]),
    gatehouse: { tracing },
  }));
  afterAll(async () => {
    await receiver?.close();
  });

  const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);

  it('a proxied request: a server span and, under it, the backend call whose ids the backend received', async () => {
    expect(tracing.enabled).toBe(true);
    const browser = new Browser();
    await browser.login(stage.gh.url, 'ada');
    const { header: cookie } = sessionCookieOf(browser, stage.gh);
    expect((await fetch(`${stage.gh.url}/api/traced`, { headers: { cookie } })).status).toBe(200);
    const sent = header(stage.backends.backend.last(), 'traceparent') ?? '';
    const [, traceId, parentId] = sent.split('-');
    await expect.poll(() => spansOf(traceId as string).length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    const backendCall = spansOf(traceId as string).find((s) => s.name === 'gatehouse.backend');
    const server = spansOf(traceId as string).find((s) => s.name === 'gatehouse.api');
    expect(backendCall?.spanId).toBe(parentId);
    expect(backendCall?.kind).toBe(3); // CLIENT
    expect(server?.kind).toBe(2); // SERVER
    expect(backendCall?.parentSpanId).toBe(server?.spanId);
    expect(receiver.paths.every((p) => p.startsWith('POST /v1/traces application/json'))).toBe(true);
    // The access line names the same trace.
    const line = stage.gh.logs.find((l) => l['msg'] === 'proxy' && l['trace'] === traceId);
    expect(line?.['status']).toBe(200);
  });

  it('a backend call cut because its pipelined body broke still ends its span (status 499)', async () => {
    const host = new URL(stage.gh.url).host;
    const before = receiver.spans.length;
    const { received } = await exchangeUntilClose(
      stage.gh.url,
      `POST /api/open/slow HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 2\r\n\r\nok` +
        `POST /api/open/cut HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
    );
    expect(statusesIn(received)).toEqual([200, 400]);
    const statusOf = (span: OtlpSpan) => span.attributes?.find((a) => a.key === 'http.response.status_code')?.value['intValue'];
    await expect
      .poll(() => receiver.spans.slice(before).some((s) => s.name === 'gatehouse.api' && String(statusOf(s)) === '400'), { timeout: 5000 })
      .toBe(true);
    const cut = receiver.spans.slice(before).find((s) => s.name === 'gatehouse.api' && String(statusOf(s)) === '400');
    await expect.poll(() => spansOf(cut?.traceId ?? '').some((s) => s.name === 'gatehouse.backend'), { timeout: 5000 }).toBe(true);
    const backend = spansOf(cut?.traceId ?? '').find((s) => s.name === 'gatehouse.backend');
    expect(String(statusOf(backend as OtlpSpan))).toBe('499');
  });

  it('a session looked up in the store: a session_lookup span under the request span', async () => {
    const unknown = `${stage.gh.config.session.cookieName}=${'A'.repeat(43)}`;
    const before = receiver.spans.length;
    await expectError(await fetch(`${stage.gh.url}/api/traced`, { headers: { cookie: unknown } }), 401, 'unauthorized');
    await expect.poll(() => receiver.spans.slice(before).some((s) => s.name === 'gatehouse.session_lookup'), { timeout: 5000 }).toBe(true);
    const lookup = receiver.spans.slice(before).find((s) => s.name === 'gatehouse.session_lookup');
    await expect.poll(() => spansOf(lookup?.traceId ?? '').some((s) => s.name === 'gatehouse.api'), { timeout: 5000 }).toBe(true);
    const server = spansOf(lookup?.traceId ?? '').find((s) => s.name === 'gatehouse.api');
    expect(lookup?.parentSpanId).toBe(server?.spanId);
  });
});
