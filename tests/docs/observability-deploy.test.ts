import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';
import { readRepoFile } from './markdown.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const dashboard = obj(JSON.parse(readRepoFile('deploy/grafana/gatehouse-dashboard.json')));
const panels = arr(dashboard['panels']).map(obj);
const queries = panels.flatMap((p) => arr(p['targets']).map((t) => String(obj(t)['expr'])));
const alertRules = arr(obj(arr(obj(parse(readRepoFile('deploy/prometheus/gatehouse-alerts.yml')))['groups'])[0])['rules']).map(obj);

/** Metric names a PromQL expression reads, histogram and counter suffixes folded onto the metric they belong to. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bgatehouse_[a-z0-9_]+/g)].map((m) => m[0]);
}

/**
 * The Grafana dashboard and the alert rules under deploy/ name only metrics a real Gatehouse exposes (scraped from a
 * running instance, so a renamed metric breaks this test, not the on-call engineer's dashboard).
 */
describe('deploy/: dashboard and alert rules', () => {
  let backend: TestBackend;
  let gh: TestGatehouse;
  let exposed: Map<string, string>;
  beforeAll(async () => {
    backend = await startBackend();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none' }]), { METRICS_PORT: '0' });
    // One request, so the per-mapping series have samples as well as their HELP and TYPE.
    const res = await fetch(`${gh.url}/api/x`);
    if (res.status !== 200) throw new Error(`the request through Gatehouse answered ${res.status}`);
    const text = await (await fetch(`http://127.0.0.1:${gh.app.metricsAddress()?.port}/metrics`)).text();
    exposed = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
  });
  afterAll(async () => {
    await gh?.close();
    await backend?.close();
  });

  /** Whether `name` is a series the scrape has: a metric, or a histogram's _bucket/_sum/_count. */
  const exists = (name: string): boolean => {
    if (exposed.has(name)) return true;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return base !== name && (exposed.get(base) === 'histogram' || exposed.get(base) === 'summary');
  };

  it('every metric the dashboard queries exists', () => {
    const names = [...new Set(queries.flatMap(metricNames))];
    expect(names.length).toBeGreaterThan(15);
    expect(names.filter((n) => !exists(n))).toEqual([]);
  });

  it('every metric the alert rules use exists', () => {
    const names = [...new Set(alertRules.flatMap((r) => metricNames(String(r['expr']))))];
    expect(names.filter((n) => !exists(n))).toEqual([]);
  });

  it('alerts on a backend down, a breaker open, refresh failures and the 5xx ratio, each with a severity and a summary', () => {
    const byName = new Map(alertRules.map((r) => [String(r['alert']), r]));
    for (const [alert, metric] of [
      ['GatehouseBackendDown', 'gatehouse_backend_up'],
      ['GatehouseCircuitBreakerOpen', 'gatehouse_backend_circuit_state'],
      ['GatehouseRefreshFailures', 'gatehouse_refresh_failures_total'],
      ['GatehouseHigh5xxRatio', 'gatehouse_requests_total'],
    ] as const)
      expect(String(byName.get(alert)?.['expr']), alert).toContain(metric);
    for (const r of alertRules) {
      expect(String(r['for']), String(r['alert'])).toMatch(/^\d+[smh]$/);
      expect(obj(r['labels'])['severity'], String(r['alert'])).toMatch(/^(warning|critical)$/);
      expect(obj(r['annotations'])['summary'], String(r['alert'])).toEqual(expect.any(String));
    }
  });

  it('the dashboard is importable: unique panel ids, a grid position each, every query on the chosen data source', () => {
    const ids = panels.map((p) => p['id']);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(obj(p['gridPos'])['w'], String(p['title'])).toEqual(expect.any(Number));
      if (p['type'] !== 'row') expect(obj(p['datasource'])['uid'], String(p['title'])).toBe('${datasource}');
    }
    expect(dashboard['uid']).toBe('gatehouse');
  });

  it('the Kubernetes pod exposes the metrics port it annotates for scraping, with METRICS_PORT set to it', () => {
    const docs = ['deployment.yaml', 'service.yaml'].flatMap((f) =>
      parseAllDocuments(readRepoFile(`deploy/kubernetes/${f}`)).map((d) => obj(d.toJS())),
    );
    const deployment = obj(docs.find((d) => d['kind'] === 'Deployment'));
    const template = obj(obj(deployment['spec'])['template']);
    const container = obj(arr(obj(template['spec'])['containers'])[0]);
    const port = arr(container['ports'])
      .map(obj)
      .find((p) => p['name'] === 'metrics');
    const env = arr(container['env'])
      .map(obj)
      .find((e) => e['name'] === 'METRICS_PORT');
    expect(String(env?.['value'])).toBe(String(port?.['containerPort']));
    expect(obj(obj(template['metadata'])['annotations'])).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(port?.['containerPort']),
      'prometheus.io/path': '/metrics',
    });
    const metricsService = obj(docs.find((d) => d['kind'] === 'Service' && obj(d['metadata'])['name'] === 'gatehouse-metrics'));
    expect(arr(obj(metricsService['spec'])['ports'])).toContainEqual({ name: 'metrics', port: 9090, targetPort: 'metrics' });
  });
});
