/**
 * What counting a request costs on the hot path: Gatehouse's metrics (two clock reads, requestStarted and
 * requestEnded on the per-mapping arrays) against prom-client's own label children doing the same work (a counter and
 * two histograms bound once), and the traceparent a request is forwarded with. CPU per call, medians of alternating
 * rounds; evidence for docs/performance.md. Run with `node bench/micro/metrics.ts`.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createTraceIds } from '../../src/observability/trace-context.ts';

const N = Number(process.env['CALLS'] ?? 1_000_000);
const ROUNDS = 7;
const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const metrics = createMetrics({ defaultMetrics: false });
const ours = (): void => {
  for (let i = 0; i < N; i++) {
    const started = performance.now();
    metrics.requestStarted();
    const backend = performance.now();
    metrics.requestEnded('mappings[0]', 'GET', 200, (performance.now() - started) / 1000, (performance.now() - backend) / 1000);
  }
};

const registry = new Registry();
const requests = new Counter({ name: 'r_total', help: 'r', labelNames: ['mapping', 'method', 'status_class'], registers: [registry] });
const duration = new Histogram({
  name: 'd_seconds',
  help: 'd',
  labelNames: ['mapping', 'method', 'status_class'],
  buckets,
  registers: [registry],
});
const backendDuration = new Histogram({ name: 'b_seconds', help: 'b', labelNames: ['mapping'], buckets, registers: [registry] });
const r = requests.labels('mappings[0]', 'GET', '2xx');
const d = duration.labels('mappings[0]', 'GET', '2xx');
const b = backendDuration.labels('mappings[0]');
const promClient = (): void => {
  for (let i = 0; i < N; i++) {
    const started = performance.now();
    const backend = performance.now();
    r.inc();
    d.observe((performance.now() - started) / 1000);
    b.observe((performance.now() - backend) / 1000);
  }
};

const ids = createTraceIds();
let sink = 0;
const traceparent = (): void => {
  for (let i = 0; i < N; i++) sink += `00-${ids.traceId()}-${ids.spanId()}-00`.length;
};

function cpuPerCall(fn: () => void): number {
  const cpu = process.cpuUsage();
  fn();
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) * 1000) / N;
}

const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)] as number;
const runs: Record<string, number[]> = { ours: [], promClient: [], traceparent: [] };
for (let round = 0; round < ROUNDS; round++) {
  runs['ours']?.push(cpuPerCall(ours));
  runs['promClient']?.push(cpuPerCall(promClient));
  runs['traceparent']?.push(cpuPerCall(traceparent));
}
if (sink === 0) throw new Error('unreachable');
process.stdout.write(
  `per request, CPU, median of ${ROUNDS} rounds × ${N} calls:\n` +
    `  Gatehouse metrics (clock reads + requestStarted/requestEnded): ${median(runs['ours'] ?? []).toFixed(0)} ns\n` +
    `  prom-client label children (same clock reads, counter + 2 histograms): ${median(runs['promClient'] ?? []).toFixed(0)} ns\n` +
    `  a new traceparent (pooled random ids): ${median(runs['traceparent'] ?? []).toFixed(0)} ns\n`,
);
