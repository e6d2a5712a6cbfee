import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findImports, type FoundImport, type ImportKind } from './scan-imports.ts';

/**
 * The shape of the house (docs/architecture.md: "Layers", "Libraries stay in their room" and "policy/ decides,
 * proxy/ forwards"), checked on every .ts file under src/:
 *   (a) no import cycle;
 *   (b) no upward edge against the layer order; dev/ imports only errors/config/observability and is
 *       imported only by main.ts, dynamically;
 *   (c) each library is imported only from its room;
 *   (d) what the production image loads is in "dependencies" (npm ci --omit=dev drops the rest);
 *   (e) proxy/ forwards: it learns who is calling through policy/, never by loading auth/ or session/ itself.
 * Type-only imports count for (a)-(c): a type that must be imported upward lives in the wrong layer.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

/** Lowest first. A file may import its own layer or any lower one. */
const LAYERS: ReadonlyArray<readonly string[]> = [
  ['errors.ts', 'config/', 'observability/'],
  ['store/'],
  ['session/', 'revocation/'],
  ['auth/', 'health/'],
  // The admission pipeline: asks auth/ who is calling; the adapters in proxy/ (HTTP and WebSocket) call it.
  ['policy/'],
  ['proxy/', 'admin/'],
  ['http/'],
  ['app.ts'],
  // The command line: `gatehouse check` builds what start-up builds (config, store, IdP client) without the app.
  ['cli/'],
  ['main.ts'],
];
const DEV = 'dev/';
/** What dev/ may import besides itself. */
const DEV_MAY_IMPORT = ['errors.ts', 'config/', 'observability/'];

/**
 * What proxy/ may not load (rule e): admission (policy/) resolves identities and reads the session cookie, and
 * hands the adapters an Admission. Type-only imports pass, for the shape of a dependency the composition root
 * injects (SessionManager, to roll a WebSocket's idle timeout).
 */
const PROXY_MAY_NOT_LOAD = ['auth/', 'session/'];
/**
 * Except the Cookie-header grammar: forwarding must keep Gatehouse's own cookies from backends, and
 * session/cookie.ts is the one reader of that header.
 */
const PROXY_MAY_LOAD_ANYWAY = ['session/cookie.ts'];

/** Package → the places that may import it (a folder ending in "/", or a file base name). */
const ROOMS: Readonly<Record<string, readonly string[]>> = {
  ioredis: ['store/'],
  // One rate-limit library and one place that counts (store/rate-counter.ts): policy/ sees only RateCounter.
  'rate-limiter-flexible': ['store/'],
  'openid-client': ['auth/'],
  jose: ['auth/'],
  express: ['http/', 'routes.ts'],
  'oidc-provider': ['dev/'],
  ws: ['dev/'],
};
/** Libraries dev/ must load dynamically (devDependencies, absent from the production image). */
const DEV_ONLY_DYNAMIC = ['oidc-provider', 'ws'];

/**
 * Known violations of the rules above, as "file -> import" exactly as the failure message prints them.
 * Each entry is a debt for the lead to pay; the test fails when an entry no longer occurs, so this list
 * can only shrink. Do not add to it to make a new violation pass.
 */
const KNOWN_VIOLATIONS: readonly string[] = [];

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly kind: ImportKind;
  readonly line: number;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listTs(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

const toRel = (full: string) => relative(SRC, full).split(sep).join('/');

function layerOf(rel: string): number | 'dev' | undefined {
  if (rel.startsWith(DEV)) return 'dev';
  const i = LAYERS.findIndex((group) => group.some((g) => (g.endsWith('/') ? rel.startsWith(g) : rel === g)));
  return i === -1 ? undefined : i;
}

const inPlace = (rel: string, places: readonly string[]) =>
  places.some((p) => (p.endsWith('/') ? rel.startsWith(p) : posix.basename(rel) === p));

function packageName(specifier: string): string | undefined {
  if (specifier.startsWith('node:') || specifier.startsWith('.') || specifier.startsWith('/')) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const files = listTs(SRC).map(toRel);
const imports = new Map<string, FoundImport[]>();
const parseErrors: string[] = [];
for (const rel of files) {
  try {
    imports.set(rel, findImports(readFileSync(join(SRC, rel), 'utf8')));
  } catch (err) {
    parseErrors.push(`${rel}: ${(err as Error).message}`);
    imports.set(rel, []);
  }
}

const edges: Edge[] = [];
const unresolved: string[] = [];
const packageImports: PackageImport[] = [];
for (const [rel, found] of imports) {
  for (const imp of found) {
    if (imp.specifier.startsWith('.')) {
      const target = toRel(resolve(join(SRC, dirname(rel)), imp.specifier));
      if (!existsSync(join(SRC, target)) || target.startsWith('..')) {
        // config/load.ts reads ../../config.schema.json with readFileSync, not import; anything imported must resolve inside src/.
        unresolved.push(`src/${rel}:${imp.line} -> ${imp.specifier}`);
        continue;
      }
      edges.push({ from: rel, to: target, kind: imp.kind, line: imp.line });
    } else {
      const pkg = packageName(imp.specifier);
      if (pkg) packageImports.push({ from: rel, pkg, kind: imp.kind, line: imp.line });
    }
  }
}

const describeEdge = (from: string, to: string) => `src/${from} -> src/${to}`;

function layerViolations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = layerOf(e.from);
    const to = layerOf(e.to);
    if (from === undefined || to === undefined) continue; // reported by the "every file has a layer" test
    if (to === 'dev') {
      if (from === 'dev') continue;
      if (e.from !== 'main.ts') out.push(`${describeEdge(e.from, e.to)} (dev/ is imported only by main.ts)`);
      else if (e.kind === 'static') out.push(`${describeEdge(e.from, e.to)} (main.ts must load dev/ with a dynamic import())`);
      continue;
    }
    if (from === 'dev') {
      if (!inPlace(e.to, DEV_MAY_IMPORT))
        out.push(`${describeEdge(e.from, e.to)} (dev/ may import only errors.ts, config/, observability/)`);
      continue;
    }
    if (to > from) out.push(`${describeEdge(e.from, e.to)} (upward: layer ${from} imports layer ${to})`);
    else if (
      e.from.startsWith('proxy/') &&
      PROXY_MAY_NOT_LOAD.some((p) => e.to.startsWith(p)) &&
      !PROXY_MAY_LOAD_ANYWAY.includes(e.to) &&
      (e.kind === 'static' || e.kind === 'dynamic')
    ) {
      out.push(`${describeEdge(e.from, e.to)} (proxy/ forwards: identities and sessions reach it through policy/)`);
    }
  }
  return out;
}

interface PackageImport {
  readonly from: string;
  readonly pkg: string;
  readonly kind: ImportKind;
  readonly line: number;
}

function roomViolations(packageImports: readonly PackageImport[]): string[] {
  const out: string[] = [];
  for (const p of packageImports) {
    const room = ROOMS[p.pkg];
    if (room && !inPlace(p.from, room)) out.push(`src/${p.from} -> ${p.pkg} (only ${room.join(', ')} may import ${p.pkg})`);
    if (DEV_ONLY_DYNAMIC.includes(p.pkg) && p.kind === 'static') {
      out.push(`src/${p.from} -> ${p.pkg} (a devDependency: load it with a dynamic import())`);
    }
  }
  return out;
}

/** Every elementary cycle's canonical form would be costly; one cycle per strongly connected component is enough to act on. */
function cycles(files: readonly string[], edges: readonly Edge[]): string[] {
  const graph = new Map<string, string[]>();
  for (const f of files) graph.set(f, []);
  for (const e of edges) graph.get(e.from)?.push(e.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  const strongConnect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).includes(v);
      if (component.length > 1 || selfLoop) components.push(component);
    }
  };
  for (const f of files) if (!index.has(f)) strongConnect(f);

  // Within each component, a shortest path back to its first member shows one concrete cycle.
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0] as string;
    const prev = new Map<string, string>();
    const queue = [start];
    let closing: string | undefined;
    while (queue.length > 0 && closing === undefined) {
      const v = queue.shift() as string;
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) {
          closing = v;
          break;
        }
        if (!prev.has(w)) {
          prev.set(w, v);
          queue.push(w);
        }
      }
    }
    const path = [start];
    for (let v = closing; v !== undefined && v !== start; v = prev.get(v)) path.splice(1, 0, v);
    path.push(start);
    return `cycle: ${path.map((p) => `src/${p}`).join(' -> ')}`;
  });
}

function checkAgainstAllowlist(found: readonly string[]): void {
  const unexpected = found.filter((v) => !KNOWN_VIOLATIONS.includes(v));
  expect(unexpected, 'import rule violations (fix the import; see conventions.md)').toEqual([]);
}

describe('import architecture of src/', () => {
  it('finds and parses the source files', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(files).toContain('app.ts');
    expect(files).toContain('main.ts');
    expect(parseErrors).toEqual([]);
    // The scanner sees what is obviously there: app.ts composes the app from every layer.
    const appTargets = edges.filter((e) => e.from === 'app.ts').map((e) => e.to);
    expect(appTargets).toEqual(expect.arrayContaining(['http/express-app.ts', 'store/redis.ts', 'auth/login.ts', 'proxy/http-handler.ts']));
  });

  it('resolves every relative import to a file inside src/', () => {
    expect(unresolved).toEqual([]);
  });

  it('places every file in a known layer (a new folder needs a place in the layer order)', () => {
    expect(files.filter((f) => layerOf(f) === undefined)).toEqual([]);
  });

  it('(a) has no import cycle', () => {
    checkAgainstAllowlist(cycles(files, edges));
  });

  it('(b) has no upward edge between layers; dev/ stays at the edge', () => {
    checkAgainstAllowlist(layerViolations(edges));
  });

  it('(c) keeps each library in its room', () => {
    checkAgainstAllowlist(roomViolations(packageImports));
  });

  it('(d) statically loads only packages in "dependencies" (the image runs npm ci --omit=dev)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const deps = new Set(Object.keys(pkg.dependencies ?? {}));
    const missing = packageImports
      .filter((p) => p.kind === 'static' && !p.from.startsWith(DEV) && !deps.has(p.pkg))
      .map((p) => `src/${p.from}:${p.line} -> ${p.pkg}`);
    expect(missing).toEqual([]);
  });

  it('keeps the allowlist of known violations current (remove entries once fixed)', () => {
    const all = new Set([...cycles(files, edges), ...layerViolations(edges), ...roomViolations(packageImports)]);
    expect(KNOWN_VIOLATIONS.filter((v) => !all.has(v))).toEqual([]);
  });
});

describe('the checks themselves (each must catch what it names)', () => {
  const edge = (from: string, to: string, kind: ImportKind = 'static'): Edge => ({ from, to, kind, line: 1 });

  it('reports an upward edge and accepts a downward or same-layer one', () => {
    expect(layerViolations([edge('session/sessions.ts', 'auth/refresh.ts', 'type')])).toEqual([
      'src/session/sessions.ts -> src/auth/refresh.ts (upward: layer 2 imports layer 3)',
    ]);
    expect(
      layerViolations([
        edge('policy/admit.ts', 'auth/identity.ts'),
        edge('session/sessions.ts', 'revocation/blocklist.ts'),
        edge('errors.ts', 'config/types.ts'),
      ]),
    ).toEqual([]);
    expect(layerViolations([edge('app.ts', 'main.ts')])).toHaveLength(1);
  });

  it('keeps policy/ below proxy/: policy decides, proxy forwards', () => {
    expect(layerViolations([edge('policy/admit.ts', 'proxy/headers.ts', 'type')])).toEqual([
      'src/policy/admit.ts -> src/proxy/headers.ts (upward: layer 4 imports layer 5)',
    ]);
    expect(layerViolations([edge('proxy/http-handler.ts', 'policy/admit.ts'), edge('http/express-app.ts', 'policy/origin.ts')])).toEqual(
      [],
    );
  });

  it('lets proxy/ load neither auth/ nor session/ (types aside, and the Cookie-header grammar)', () => {
    const loads = [edge('proxy/websocket.ts', 'auth/identity.ts'), edge('proxy/headers.ts', 'session/sessions.ts', 'dynamic')];
    expect(layerViolations(loads)).toEqual([
      'src/proxy/websocket.ts -> src/auth/identity.ts (proxy/ forwards: identities and sessions reach it through policy/)',
      'src/proxy/headers.ts -> src/session/sessions.ts (proxy/ forwards: identities and sessions reach it through policy/)',
    ]);
    const allowed = [
      edge('proxy/websocket.ts', 'session/sessions.ts', 'type'),
      edge('proxy/headers.ts', 'session/cookie.ts'),
      edge('admin/routes.ts', 'session/sessions.ts'),
    ];
    expect(layerViolations(allowed)).toEqual([]);
  });

  it('keeps dev/ at the edge: only main.ts, only dynamically; dev/ imports only the base layer', () => {
    expect(
      layerViolations([
        edge('main.ts', 'dev/setup.ts', 'dynamic'),
        edge('main.ts', 'dev/setup.ts', 'type-query'),
        edge('dev/setup.ts', 'observability/logger.ts'),
        edge('dev/setup.ts', 'dev/idp.ts'),
      ]),
    ).toEqual([]);
    expect(layerViolations([edge('main.ts', 'dev/setup.ts', 'static')])).toHaveLength(1);
    expect(layerViolations([edge('app.ts', 'dev/setup.ts', 'dynamic')])).toHaveLength(1);
    expect(layerViolations([edge('dev/setup.ts', 'session/sessions.ts')])).toHaveLength(1);
  });

  it('reports a cycle with its path, including a type-only one', () => {
    const found = cycles(
      ['a.ts', 'b.ts', 'c.ts', 'd.ts'],
      [edge('a.ts', 'b.ts'), edge('b.ts', 'c.ts', 'type'), edge('c.ts', 'a.ts'), edge('c.ts', 'd.ts')],
    );
    expect(found).toEqual(['cycle: src/a.ts -> src/b.ts -> src/c.ts -> src/a.ts']);
    expect(cycles(['a.ts', 'b.ts'], [edge('a.ts', 'b.ts')])).toEqual([]);
  });

  it('reports a library outside its room, and a static import of a dev-only library', () => {
    const imp = (from: string, pkg: string, kind: ImportKind = 'static'): PackageImport => ({ from, pkg, kind, line: 1 });
    expect(roomViolations([imp('session/sessions.ts', 'ioredis')])).toHaveLength(1);
    expect(roomViolations([imp('auth/login.ts', 'express', 'type')])).toHaveLength(1);
    expect(
      roomViolations([
        imp('admin/routes.ts', 'express'),
        imp('http/auth-routes.ts', 'express'),
        imp('store/redis.ts', 'ioredis'),
        imp('dev/idp.ts', 'oidc-provider', 'dynamic'),
      ]),
    ).toEqual([]);
    expect(roomViolations([imp('dev/backend.ts', 'ws', 'static')])).toEqual([
      'src/dev/backend.ts -> ws (a devDependency: load it with a dynamic import())',
    ]);
  });
});
