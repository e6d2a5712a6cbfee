import type * as OtelApi from '@opentelemetry/api';
import type * as OtelSdk from '@opentelemetry/sdk-node';
import type { Logger } from './logger.ts';
import type { TraceParent } from './trace-context.ts';

/**
 * OpenTelemetry spans through the official SDK, off by default. When the standard OTEL_* variables ask for traces
 * ({@link tracingWanted}) the SDK is loaded with a dynamic import and started with traces only (Gatehouse's metrics are
 * Prometheus'); otherwise nothing of OpenTelemetry is loaded and every call here is a no-op.
 */
export interface Tracing {
  readonly enabled: boolean;
  /**
   * The span of one /api request or upgrade: a child of the client's trace context when it was trusted, else the root
   * of a new trace. Undefined when tracing is off.
   */
  startRequest(name: string, incoming: TraceParent | undefined): RequestSpan | undefined;
  /** Runs `fn` in a span named `name`, a child of whichever span is active (the request's, through `RequestSpan.run`). */
  span<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Flushes and stops the exporter. */
  close(): Promise<void>;
}

export interface RequestSpan {
  readonly traceId: string;
  /** Runs `fn` with this span active, so spans started inside (session lookup, refresh) are its children. */
  run<T>(fn: () => T): T;
  /** Starts the backend call's span (kind CLIENT): its ids are the `traceparent` the backend receives. */
  backendCall(mapping: string): BackendSpan;
  end(status: number, mapping: string): void;
}

export interface BackendSpan {
  /** The traceparent naming this span, for the backend. */
  readonly traceparent: string;
  end(status: number): void;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Whether the standard variables ask for traces: OTEL_TRACES_EXPORTER set to anything but `none`, or an OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with the default exporter; never with
 * OTEL_SDK_DISABLED=true.
 * @see https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/
 */
export function tracingWanted(env: Env): boolean {
  if ((env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true') return false;
  const exporter = (env['OTEL_TRACES_EXPORTER'] ?? '').trim();
  if (exporter !== '') return exporter.split(',').some((e) => e.trim() !== 'none' && e.trim() !== '');
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

export function createNoTracing(): Tracing {
  return {
    enabled: false,
    startRequest: () => undefined,
    span: (_name, fn) => fn(),
    close: () => Promise.resolve(),
  };
}

/** What createTracing loads when tracing is wanted; a seam so a test can see that nothing is loaded otherwise. */
export interface TracingModules {
  // Type-only imports above: erased, so loading this file loads nothing of OpenTelemetry.
  load(): Promise<{ sdk: typeof OtelSdk; api: typeof OtelApi }>;
}

const OTEL: TracingModules = {
  load: async () => {
    const [sdk, api] = await Promise.all([import('@opentelemetry/sdk-node'), import('@opentelemetry/api')]);
    return { sdk, api };
  },
};

/**
 * Starts the SDK when {@link tracingWanted}; the SDK reads its exporter, endpoint, protocol, sampler and resource from
 * the same OTEL_* variables (in `process.env`). Metrics and logs exporters stay off whatever OTEL_METRICS_EXPORTER and
 * OTEL_LOGS_EXPORTER say: Gatehouse's metrics are scraped from /metrics and its logs go to stdout.
 */
export async function createTracing(env: Env, log: Logger, modules: TracingModules = OTEL): Promise<Tracing> {
  if (!tracingWanted(env)) return createNoTracing();
  const { sdk: otel, api } = await modules.load();
  const sdk = new otel.NodeSDK({
    serviceName: env['OTEL_SERVICE_NAME'] ?? 'gatehouse',
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  const tracer = api.trace.getTracer('gatehouse');
  log.info({ exporter: env['OTEL_TRACES_EXPORTER'] ?? 'otlp' }, 'tracing: OpenTelemetry spans exported');

  return {
    enabled: true,
    startRequest(name, incoming) {
      const parent = incoming
        ? api.trace.setSpanContext(api.ROOT_CONTEXT, {
            traceId: incoming.traceId,
            spanId: incoming.parentId,
            traceFlags: Number.parseInt(incoming.flags, 16) & 1,
            isRemote: true,
          })
        : api.ROOT_CONTEXT;
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER }, parent);
      const active = api.trace.setSpan(parent, span);
      return {
        traceId: span.spanContext().traceId,
        run: (fn) => api.context.with(active, fn),
        backendCall(mapping) {
          const call = tracer.startSpan(
            'gatehouse.backend',
            { kind: api.SpanKind.CLIENT, attributes: { 'gatehouse.mapping': mapping } },
            active,
          );
          const c = call.spanContext();
          return {
            traceparent: `00-${c.traceId}-${c.spanId}-0${c.traceFlags & 1}`,
            end(status) {
              call.setAttribute('http.response.status_code', status);
              if (status >= 500 || status === 0) call.setStatus({ code: api.SpanStatusCode.ERROR });
              call.end();
            },
          };
        },
        end(status, mapping) {
          span.setAttribute('gatehouse.mapping', mapping);
          span.setAttribute('http.response.status_code', status);
          if (status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    span(name, fn) {
      return tracer.startActiveSpan(name, (span) =>
        fn().then(
          (value) => {
            span.end();
            return value;
          },
          (err: unknown) => {
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
            span.end();
            throw err;
          },
        ),
      );
    },
    close: () => sdk.shutdown(),
  };
}
