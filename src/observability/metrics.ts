import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type MetricObjectWithValues,
  type MetricValueWithName,
} from 'prom-client';

/**
 * Gatehouse's Prometheus metrics, behind the small typed interface every other layer gets ("metrics only through
 * observability/"): prom-client and its Registry stay in this file. Names follow the Prometheus conventions
 * (`gatehouse_…_total`, base units, `_seconds`); labels are low-cardinality only: a mapping's name, a method, a status
 * class, a reason or error code from a fixed set, a backend origin from the config. Never a path, a user or a session.
 * @see https://prometheus.io/docs/practices/naming/
 */
export interface Metrics {
  /** False for {@link createNoMetrics}: callers may skip work whose only use is a metric. */
  readonly enabled: boolean;
  /** An /api request (HTTP) arrived: counts it in flight until {@link Metrics.requestEnded}. */
  requestStarted(): void;
  /**
   * An /api request ended. `mapping` is the mapping's name ('-' when it was refused before routing), `status` what the
   * client got (499 when it left), `backendSeconds` the time from sending the request to the backend's response head,
   * or a negative number when no backend answered. Costs two array updates: no label object, no string built.
   */
  requestEnded(mapping: string, method: string, status: number, seconds: number, backendSeconds: number): void;
  /** Gatehouse answered with its own JSON error (HTTP or upgrade, any route): counted by the stable `error` code. */
  errorResponse(code: string, status: number): void;
  loginSucceeded(): void;
  /** `reason`: the error code the callback was answered with (invalid_state, login_failed, idp_unavailable, …). */
  loginFailed(reason: string): void;
  loggedOut(kind: LogoutKind): void;
  refreshed(): void;
  refreshFailed(reason: RefreshFailure): void;
  revoked(kind: RevocationKind): void;
  /** One session-store command: how long it took, and whether it failed. */
  storeCommand(command: string, seconds: number, failed: boolean): void;
  /** One HTTP call to the identity provider, by the endpoint it went to. */
  idpCall(endpoint: IdpEndpoint, seconds: number, failed: boolean): void;
  /** A backend's health as its health check sees it (the backends work calls this on each change). */
  backendState(backend: string, state: BackendHealth): void;
  /** A backend's circuit breaker state (the backends work calls this on each transition). */
  breakerState(backend: string, state: BreakerState): void;
  /** A reload dropped the backend's health check or breaker: its series go, rather than report a state forever. */
  backendForgotten(backend: string, what: 'health' | 'breaker'): void;
  /** Values read at scrape time from their owner (open WebSockets, open event streams, the limiter's failed-open count): nothing to update per event. */
  gauge(name: GaugeSource, read: () => number): void;
  /** The Prometheus text exposition of everything registered. */
  render(): Promise<{ contentType: string; body: string }>;
}

export type LogoutKind = 'rp_initiated' | 'backchannel';
export type RefreshFailure = 'refused' | 'idp_unavailable' | 'no_refresh_token' | 'session_gone' | 'store';
export type RevocationKind = 'session' | 'user' | 'jti';
export type IdpEndpoint = 'discovery' | 'token' | 'userinfo' | 'jwks' | 'revocation' | 'other';
export type BackendHealth = 'up' | 'down';
/** As proxy/backends/breaker.ts names them; the label value is `half_open` (Prometheus label values take no hyphen by convention). */
export type BreakerState = 'closed' | 'open' | 'half-open';
export type GaugeSource = 'websockets' | 'event_streams' | 'rate_limit_failed_open';

/** The method label's values: the methods /api serves, and `other` for any method admission refuses. */
export const METHOD_CLASSES = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'other'] as const;
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

/** Seconds. From a cached-session request (well under a millisecond) to a slow backend (30 s, the default timeout). */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Redis and the IdP: milliseconds normally, seconds when in trouble. */
const DEPENDENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'POST':
      return 2;
    case 'PUT':
      return 3;
    case 'PATCH':
      return 4;
    case 'DELETE':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return 7;
  }
}

function statusIndex(status: number): number {
  const c = (status / 100) | 0;
  return c >= 1 && c <= 5 ? c - 1 : 5;
}

const CELLS = METHOD_CLASSES.length * STATUS_CLASSES.length;

/**
 * One mapping's request series, pre-allocated: a cell per method × status class, each with its request count, its
 * duration sum and one count per histogram bucket. prom-client's own label children hash their label values into a
 * string on every observation (about 2.6 µs a request for a counter and two histograms, measured); these arrays cost
 * a few array writes, and become prom-client's shape only when scraped.
 */
class MappingSeries {
  readonly counts = new Float64Array(CELLS);
  readonly sums = new Float64Array(CELLS);
  /** Per cell, REQUEST_BUCKETS.length counts (not cumulative; the scrape adds them up). */
  readonly buckets = new Float64Array(CELLS * REQUEST_BUCKETS.length);
  readonly backendCount = new Float64Array(1);
  readonly backendSum = new Float64Array(1);
  readonly backendBuckets = new Float64Array(REQUEST_BUCKETS.length);
}

function bucketOf(seconds: number): number {
  // A linear scan: most requests land in the first few buckets.
  for (let i = 0; i < REQUEST_BUCKETS.length; i++) if (seconds <= (REQUEST_BUCKETS[i] as number)) return i;
  return -1;
}

type Values = Array<MetricValueWithName<string>>;

function histogramValues(
  out: Values,
  name: string,
  labels: Record<string, string>,
  buckets: Float64Array,
  offset: number,
  count: number,
  sum: number,
): void {
  let acc = 0;
  for (let i = 0; i < REQUEST_BUCKETS.length; i++) {
    acc += buckets[offset + i] as number;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: REQUEST_BUCKETS[i] as number }, value: acc });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: count });
}

/**
 * A prom-client metric whose values come from {@link MappingSeries} arrays at scrape time. The Registry reads a metric
 * through `getForPromString()` when there is one (histograms) and `get()` otherwise: both answer the same, already
 * flat, values.
 */
function arrayBacked(
  type: 'counter' | 'histogram',
  def: { name: string; help: string; labelNames: string[]; registers: Registry[] },
  values: () => Values,
): void {
  const metric = type === 'counter' ? new Counter(def) : new Histogram({ ...def, buckets: REQUEST_BUCKETS });
  // prom-client's own get(), called once before it is replaced, gives the name, help and type (and no values: nothing
  // is recorded through it).
  const head = metric.get() as Promise<MetricObjectWithValues<MetricValueWithName<string>>>;
  const get = async (): Promise<MetricObjectWithValues<MetricValueWithName<string>>> => ({ ...(await head), values: values() });
  Object.assign(metric, { get, getForPromString: get });
}

const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
/** A breaker state as the `state` label writes it (Prometheus label values conventionally use underscores). */
const breakerLabel = (s: BreakerState): string => (s === 'half-open' ? 'half_open' : s);

/**
 * The registry and every metric, created per app (never prom-client's global default registry: two apps in one
 * process, as in the tests, keep their own counts).
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
  const registers = [registry];

  const mappings = new Map<string, MappingSeries>();
  let inFlight = 0;
  const seriesOf = (name: string): MappingSeries => {
    let s = mappings.get(name);
    if (s === undefined) {
      s = new MappingSeries();
      mappings.set(name, s);
    }
    return s;
  };
  const cellLabels = (mapping: string, cell: number) => ({
    mapping,
    method: METHOD_CLASSES[(cell / STATUS_CLASSES.length) | 0] as string,
    status_class: STATUS_CLASSES[cell % STATUS_CLASSES.length] as string,
  });

  arrayBacked(
    'counter',
    {
      name: 'gatehouse_requests_total',
      help: 'Requests to /api answered, by mapping, method and status class (mapping "-": refused before routing).',
      labelNames: ['mapping', 'method', 'status_class'],
      registers,
    },
    () => {
      const out: Values = [];
      for (const [mapping, s] of mappings)
        for (let c = 0; c < CELLS; c++)
          if ((s.counts[c] as number) > 0) out.push({ labels: cellLabels(mapping, c), value: s.counts[c] as number });
      return out;
    },
  );
  arrayBacked(
    'histogram',
    {
      name: 'gatehouse_request_duration_seconds',
      help: 'Time from an /api request arriving to its response ending (Gatehouse and backend together), by mapping, method and status class.',
      labelNames: ['mapping', 'method', 'status_class'],
      registers,
    },
    () => {
      const out: Values = [];
      for (const [mapping, s] of mappings)
        for (let c = 0; c < CELLS; c++) {
          const count = s.counts[c] as number;
          if (count > 0)
            histogramValues(
              out,
              'gatehouse_request_duration_seconds',
              cellLabels(mapping, c),
              s.buckets,
              c * REQUEST_BUCKETS.length,
              count,
              s.sums[c] as number,
            );
        }
      return out;
    },
  );
  arrayBacked(
    'histogram',
    {
      name: 'gatehouse_backend_response_seconds',
      help: "Time from sending a request to the backend to its response head (the backend's own time plus the network), by mapping.",
      labelNames: ['mapping'],
      registers,
    },
    () => {
      const out: Values = [];
      for (const [mapping, s] of mappings) {
        const count = s.backendCount[0] as number;
        if (count > 0)
          histogramValues(out, 'gatehouse_backend_response_seconds', { mapping }, s.backendBuckets, 0, count, s.backendSum[0] as number);
      }
      return out;
    },
  );
  new Gauge({
    name: 'gatehouse_requests_in_flight',
    help: 'Requests to /api (HTTP) received and not yet answered.',
    registers,
    collect() {
      this.set(inFlight);
    },
  });
  const sources = new Map<GaugeSource, () => number>();
  const sourceGauge = (name: string, help: string, source: GaugeSource) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(sources.get(source)?.() ?? 0);
      },
    });
  sourceGauge('gatehouse_websockets_open', 'WebSockets relayed right now.', 'websockets');
  sourceGauge('gatehouse_event_streams_open', 'Event-stream (text/event-stream) responses relayed right now.', 'event_streams');
  // Kept by the limiter itself (a number it counts anyway); read when scraped, like the gauges above.
  new Counter({
    name: 'gatehouse_rate_limit_failed_open_total',
    help: '/api requests admitted without being counted because the rate-limit store (Redis) failed (limits fail open).',
    registers,
    collect() {
      this.reset();
      this.inc(sources.get('rate_limit_failed_open')?.() ?? 0);
    },
  });

  const errorResponses = new Counter({
    name: 'gatehouse_error_responses_total',
    help:
      'Responses Gatehouse answered itself with its JSON error body, by the stable `error` code (docs/errors.md): every refusal ' +
      '(auth, CSRF, CORS, schema, rate limit, routing, hygiene) and every failure it reports (bad_gateway, backend_unavailable, …).',
    labelNames: ['error'],
    registers,
  });
  const authFailures = new Counter({
    name: 'gatehouse_auth_failures_total',
    help: 'Requests refused because of who is calling (401 and 403 answers), by reason: the error code.',
    labelNames: ['reason'],
    registers,
  });
  const logins = new Counter({ name: 'gatehouse_logins_total', help: 'Logins completed (a session created).', registers });
  const loginFailures = new Counter({
    name: 'gatehouse_login_failures_total',
    help: 'Login callbacks that failed, by reason: the error code answered.',
    labelNames: ['reason'],
    registers,
  });
  const logouts = new Counter({
    name: 'gatehouse_logouts_total',
    help: 'Sessions ended by a logout, by kind (rp_initiated: POST /auth/logout; backchannel: the IdP).',
    labelNames: ['kind'],
    registers,
  });
  const refreshes = new Counter({
    name: 'gatehouse_refreshes_total',
    help: 'Access tokens refreshed with the IdP (refresh_token grants that succeeded).',
    registers,
  });
  const refreshFailures = new Counter({
    name: 'gatehouse_refresh_failures_total',
    help:
      'Refreshes that failed, by reason: refused (the IdP refused the grant; the session ended), idp_unavailable (the IdP did not ' +
      'answer; the session is kept), no_refresh_token, session_gone, store (the refreshed tokens could not be stored).',
    labelNames: ['reason'],
    registers,
  });
  const revocations = new Counter({
    name: 'gatehouse_revocations_total',
    help: 'Revocations written to the blocklist by this replica, by kind (session, user, jti).',
    labelNames: ['kind'],
    registers,
  });
  const storeErrors = new Counter({
    name: 'gatehouse_session_store_errors_total',
    help: 'Session-store (Redis) commands that failed, by command.',
    labelNames: ['command'],
    registers,
  });
  const storeLatency = new Histogram({
    name: 'gatehouse_session_store_duration_seconds',
    help: 'Session-store (Redis) command latency, by command.',
    labelNames: ['command'],
    buckets: DEPENDENCY_BUCKETS,
    registers,
  });
  const idpLatency = new Histogram({
    name: 'gatehouse_idp_request_duration_seconds',
    help: 'HTTP calls to the identity provider, by endpoint and outcome (ok, or error: no answer or a 5xx).',
    labelNames: ['endpoint', 'outcome'],
    buckets: DEPENDENCY_BUCKETS,
    registers,
  });
  const backendUp = new Gauge({
    name: 'gatehouse_backend_up',
    help: "1 when the backend's health check passes, 0 when it fails, by backend origin (only backends with a health check).",
    labelNames: ['backend'],
    registers,
  });
  const breaker = new Gauge({
    name: 'gatehouse_backend_circuit_state',
    help: 'Circuit breaker state per backend origin: 1 on the current state (closed, open, half_open), 0 on the others.',
    labelNames: ['backend', 'state'],
    registers,
  });

  // Low-rate series keep prom-client's label children, bound once per label value.
  const bound = <C>(cache: Map<string, C>, key: string, make: () => C): C => {
    let child = cache.get(key);
    if (child === undefined) {
      child = make();
      cache.set(key, child);
    }
    return child;
  };
  const storeChildren = new Map<string, { latency: Histogram.Internal<string>; errors: Counter.Internal }>();
  const idpChildren = new Map<string, Histogram.Internal<string>>();

  return {
    enabled: true,
    requestStarted() {
      inFlight++;
    },
    requestEnded(mapping, method, status, seconds, backendSeconds) {
      inFlight--;
      const s = seriesOf(mapping);
      const cell = methodIndex(method) * STATUS_CLASSES.length + statusIndex(status);
      s.counts[cell] = (s.counts[cell] as number) + 1;
      s.sums[cell] = (s.sums[cell] as number) + seconds;
      const b = bucketOf(seconds);
      if (b >= 0) {
        const i = cell * REQUEST_BUCKETS.length + b;
        s.buckets[i] = (s.buckets[i] as number) + 1;
      }
      if (backendSeconds >= 0) {
        s.backendCount[0] = (s.backendCount[0] as number) + 1;
        s.backendSum[0] = (s.backendSum[0] as number) + backendSeconds;
        const bb = bucketOf(backendSeconds);
        if (bb >= 0) s.backendBuckets[bb] = (s.backendBuckets[bb] as number) + 1;
      }
    },
    errorResponse(code, status) {
      errorResponses.inc({ error: code });
      if (status === 401 || status === 403) authFailures.inc({ reason: code });
    },
    loginSucceeded: () => logins.inc(),
    loginFailed: (reason) => loginFailures.inc({ reason }),
    loggedOut: (kind) => logouts.inc({ kind }),
    refreshed: () => refreshes.inc(),
    refreshFailed: (reason) => refreshFailures.inc({ reason }),
    revoked: (kind) => revocations.inc({ kind }),
    storeCommand(command, seconds, failed) {
      const c = bound(storeChildren, command, () => ({ latency: storeLatency.labels(command), errors: storeErrors.labels(command) }));
      c.latency.observe(seconds);
      if (failed) c.errors.inc();
    },
    idpCall(endpoint, seconds, failed) {
      const outcome = failed ? 'error' : 'ok';
      bound(idpChildren, `${endpoint} ${outcome}`, () => idpLatency.labels(endpoint, outcome)).observe(seconds);
    },
    backendState(backend, state) {
      backendUp.set({ backend }, state === 'up' ? 1 : 0);
    },
    breakerState(backend, state) {
      for (const s of BREAKER_STATES) breaker.set({ backend, state: breakerLabel(s) }, s === state ? 1 : 0);
    },
    backendForgotten(backend, what) {
      if (what === 'health') backendUp.remove({ backend });
      else for (const s of BREAKER_STATES) breaker.remove({ backend, state: breakerLabel(s) });
    },
    gauge(name, read) {
      sources.set(name, read);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** Metrics off (neither METRICS_PORT nor ADMIN_TOKEN: nowhere to read them): every call does nothing. */
export function createNoMetrics(): Metrics {
  const nothing = () => undefined;
  return {
    enabled: false,
    requestStarted: nothing,
    requestEnded: nothing,
    errorResponse: nothing,
    loginSucceeded: nothing,
    loginFailed: nothing,
    loggedOut: nothing,
    refreshed: nothing,
    refreshFailed: nothing,
    revoked: nothing,
    storeCommand: nothing,
    idpCall: nothing,
    backendState: nothing,
    breakerState: nothing,
    backendForgotten: nothing,
    gauge: nothing,
    render: () => Promise.reject(new Error('metrics are off')),
  };
}
