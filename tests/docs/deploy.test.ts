import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ENV_NAMES, ENV_SCHEMA } from '../../src/config/env-schema.ts';
import { loadFileConfig } from '../../src/config/load.ts';
import { ROOT, readRepoFile } from './markdown.ts';

/**
 * There is no container engine here: the compose file and the Kubernetes manifests are parsed and checked
 * against the code instead (every variable they set exists, probes hit real endpoints, the drain fits in the
 * grace period, config.yml validates as start-up would).
 */
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const known = new Set<string>(ENV_NAMES);
const envDefault = (name: string): number => Number(obj(obj(ENV_SCHEMA.properties)[name])['default'] ?? 0);
/** The longest a drain can take, in seconds: the delay before it (when the code has one) plus its deadline. */
const drainSeconds = () =>
  envDefault('SHUTDOWN_TIMEOUT_MS') / 1000 + (known.has('SHUTDOWN_DELAY_SECONDS') ? envDefault('SHUTDOWN_DELAY_SECONDS') : 0);

describe('docker-compose.yml', () => {
  const compose = obj(parse(readRepoFile('docker-compose.yml')));
  const services = obj(compose['services']);
  const redis = obj(services['redis']);
  const gatehouse = obj(services['gatehouse']);
  const demo = obj(services['gatehouse-demo']);

  it('runs Redis with AOF persistence and a healthcheck', () => {
    expect(String(redis['image'])).toMatch(/^redis:7/);
    expect(arr(redis['command']).join(' ')).toContain('--appendonly yes');
    expect(arr(obj(redis['healthcheck'])['test'])).toEqual(['CMD', 'redis-cli', 'ping']);
  });

  it('starts Gatehouse (production profile) once Redis is healthy, with config.yml read-only and secrets from .env', () => {
    expect(gatehouse['profiles']).toEqual(['production']);
    expect(gatehouse['build']).toBe('.');
    expect(obj(obj(gatehouse['depends_on'])['redis'])['condition']).toBe('service_healthy');
    expect(arr(gatehouse['volumes'])).toContain('./config.yml:/etc/gatehouse/config.yml:ro');
    expect(gatehouse['env_file']).toBe('.env');
    expect(obj(gatehouse['environment'])).toMatchObject({ NODE_ENV: 'production', GATEHOUSE_CONFIG: '/etc/gatehouse/config.yml' });
    expect(arr(gatehouse['ports'])).toContain('8080:8080');
    expect(gatehouse['read_only']).toBe(true);
    expect(Number.parseInt(String(gatehouse['stop_grace_period']), 10)).toBeGreaterThan(drainSeconds());
  });

  it('has a demo profile that runs the development mode of `npm start` from Dockerfile.demo', () => {
    expect(demo['profiles']).toEqual(['demo']);
    expect(obj(demo['build'])['dockerfile']).toBe('Dockerfile.demo');
    expect(obj(demo['environment'])['NODE_ENV']).toBeUndefined();
    expect(arr(demo['volumes'])).toContain('./config.yml:/app/config.yml:ro');
    const dockerfile = readRepoFile('Dockerfile.demo')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    expect(dockerfile).toMatch(/^RUN npm ci --no-audit --no-fund/m);
    expect(dockerfile).not.toMatch(/NODE_ENV=production/);
    expect(dockerfile).toMatch(/^COPY public \.\/public$/m);
    expect(readRepoFile('Dockerfile.demo.dockerignore')).toMatch(/^!public$/m);
  });

  it('sets only variables Gatehouse reads, and .env.example names only those too', () => {
    for (const service of [gatehouse, demo])
      for (const name of Object.keys(obj(service['environment']))) expect(known, name).toContain(name);
    const example = readRepoFile('.env.example')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => l.slice(0, l.indexOf('=')));
    expect(example.length).toBeGreaterThan(3);
    for (const name of example) expect(known, name).toContain(name);
  });
});

describe('deploy/kubernetes', () => {
  const dir = join(ROOT, 'deploy/kubernetes');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  const docs = files.flatMap((f) => parseAllDocuments(readRepoFile(`deploy/kubernetes/${f}`)).map((d) => obj(d.toJS())));
  const ofKind = (kind: string) => docs.filter((d) => d['kind'] === kind);
  const deployment = obj(ofKind('Deployment')[0]);
  const pod = obj(obj(obj(deployment['spec'])['template'])['spec']);
  const container = obj(arr(pod['containers'])[0]);

  it('the kustomization lists every manifest', () => {
    const kustomization = obj(ofKind('Kustomization')[0]);
    expect([...arr(kustomization['resources'])].sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml').sort());
  });

  it('runs two replicas, ready on /readyz and alive on /healthz, on the named port', () => {
    expect(obj(deployment['spec'])['replicas']).toBe(2);
    expect(obj(obj(container['readinessProbe'])['httpGet'])).toMatchObject({ path: '/readyz', port: 'http' });
    expect(obj(obj(container['livenessProbe'])['httpGet'])).toMatchObject({ path: '/healthz', port: 'http' });
    expect(arr(container['ports'])).toContainEqual({ name: 'http', containerPort: 8080 });
  });

  it('gives a pod longer to stop than its drain takes', () => {
    expect(Number(pod['terminationGracePeriodSeconds'])).toBeGreaterThan(drainSeconds());
  });

  it('runs as non-root on a read-only root filesystem, with resource requests', () => {
    expect(obj(pod['securityContext'])).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(obj(container['securityContext'])).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(obj(obj(container['resources'])['requests'])).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
  });

  it('sets only variables Gatehouse reads, the secret ones from the Secret', () => {
    const names = arr(container['env']).map((e) => String(obj(e)['name']));
    const secret = obj(ofKind('Secret')[0]);
    const secretNames = Object.keys(obj(secret['stringData']));
    for (const name of [...names, ...secretNames]) expect(known, name).toContain(name);
    expect(secretNames).toEqual(expect.arrayContaining(['OIDC_CLIENT_SECRET', 'ADMIN_TOKEN', 'REDIS_URL']));
    expect(names).not.toContain('OIDC_CLIENT_SECRET');
    expect(arr(container['envFrom'])).toContainEqual({ secretRef: { name: obj(secret['metadata'])['name'] } });
  });

  it('mounts the ConfigMap where GATEHOUSE_CONFIG points, and its config.yml validates as start-up would', () => {
    const config = arr(container['env'])
      .map(obj)
      .find((e) => e['name'] === 'GATEHOUSE_CONFIG');
    expect(config?.['value']).toBe('/etc/gatehouse/config.yml');
    expect(arr(container['volumeMounts'])).toContainEqual({ name: 'config', mountPath: '/etc/gatehouse', readOnly: true });
    const configMap = obj(ofKind('ConfigMap')[0]);
    const yml = String(obj(configMap['data'])['config.yml']);
    const problems: string[] = [];
    const file = loadFileConfig('/etc/gatehouse/config.yml', {}, () => yml, problems);
    expect(problems).toEqual([]);
    expect(file.mappings.length).toBeGreaterThan(0);
  });

  it('has a Service on the named port and a PodDisruptionBudget that keeps one replica', () => {
    const service = obj(ofKind('Service')[0]);
    expect(arr(obj(service['spec'])['ports'])).toContainEqual({ name: 'http', port: 80, targetPort: 'http' });
    expect(obj(obj(ofKind('PodDisruptionBudget')[0])['spec'])['minAvailable']).toBe(1);
  });
});
