interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  readonly name: string;
  readonly ms: number;
  readonly pct: number;
}
export interface ProfileSummary {
  /** Sampled time excluding idle, in ms. */
  readonly busyMs: number;
  readonly self: readonly ProfileLine[];
  /** Inclusive time of Gatehouse's own functions (src/), the ones a change would target. */
  readonly inclusive: readonly ProfileLine[];
  readonly areas: readonly ProfileLine[];
}

function parse(text: string): CpuProfile {
  const data: unknown = JSON.parse(text);
  if (!data || typeof data !== 'object' || !Array.isArray((data as CpuProfile).nodes) || !Array.isArray((data as CpuProfile).samples)) {
    throw new Error('not a .cpuprofile');
  }
  return data as CpuProfile;
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const src = url.lastIndexOf('/src/');
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

/** Which part of the stack a frame belongs to, for the "where does the time go" summary. */
function areaOf(f: CallFrame): string {
  const u = f.url;
  if (!u) {
    if (f.functionName === '(garbage collector)') return 'GC';
    if (f.functionName === '(program)') return 'V8/native (program)';
    return `native ${f.functionName || '(anonymous)'}`;
  }
  if (u.includes('/src/')) return shortUrl(u);
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1] as string;
  if (u.startsWith('node:internal/http') || u.startsWith('node:_http') || u === 'node:http') return 'node:http';
  if (u.startsWith('node:internal/streams') || u.startsWith('node:stream')) return 'node:streams';
  if (u.startsWith('node:net') || u.startsWith('node:internal/net') || u.includes('stream_base')) return 'node:net';
  return u.startsWith('node:') ? 'node (other core)' : shortUrl(u);
}

/** Self time per function, inclusive time per src/ function, and self time per area, from a V8 .cpuprofile. */
export function summarizeProfile(text: string, top = 20): ProfileSummary {
  const p = parse(text);
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const selfById = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    selfById.set(id, (selfById.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const isIdle = (n: ProfileNode) => n.callFrame.functionName === '(idle)';
  let busy = 0;
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const n of p.nodes) {
    const ms = selfById.get(n.id) ?? 0;
    if (ms === 0 || isIdle(n)) continue;
    busy += ms;
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + ms);
    const area = areaOf(f);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  // Inclusive: a frame's self time plus its subtree, counted once per function even under recursion.
  const inclusiveById = new Map<number, number>();
  const total = (id: number): number => {
    const cached = inclusiveById.get(id);
    if (cached !== undefined) return cached;
    const n = byId.get(id);
    let sum = n && !isIdle(n) ? (selfById.get(id) ?? 0) : 0;
    for (const c of n?.children ?? []) sum += total(c);
    inclusiveById.set(id, sum);
    return sum;
  };
  const parents = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
  const inclusive = new Map<string, number>();
  for (const n of p.nodes) {
    const f = n.callFrame;
    if (!f.url.includes('/src/')) continue;
    const key = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    // Skip a node whose ancestor is the same function (recursion) so its time is not counted twice.
    let up = parents.get(n.id);
    let nested = false;
    while (up !== undefined) {
      const a = byId.get(up);
      if (a && a.callFrame.url === f.url && a.callFrame.lineNumber === f.lineNumber && a.callFrame.functionName === f.functionName) {
        nested = true;
        break;
      }
      up = parents.get(up);
    }
    if (!nested) inclusive.set(key, (inclusive.get(key) ?? 0) + total(n.id));
  }
  const lines = (m: Map<string, number>, limit: number): ProfileLine[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, ms]) => ({ name, ms, pct: busy > 0 ? (100 * ms) / busy : 0 }));
  return { busyMs: busy, self: lines(self, top), inclusive: lines(inclusive, top), areas: lines(areas, 1000) };
}

/** One profiled process: its summary and how many requests it served in the profiled window. */
export interface ProfiledRun {
  readonly label: string;
  readonly summary: ProfileSummary;
  readonly requests: number;
}

const perReq = (ms: number, requests: number) => (requests > 0 ? (ms * 1000) / requests : Number.NaN);

/**
 * Side-by-side CPU per request by area (µs of sampled CPU per request served), then, for each run
 * after the first (the reference), its top functions by self time and Gatehouse's own functions by inclusive time.
 */
export function formatProfiles(runs: readonly ProfiledRun[], top = 15): string {
  const areaNames = new Set<string>();
  for (const r of runs) for (const a of r.summary.areas) areaNames.add(a.name);
  const value = (r: ProfiledRun, name: string) => r.summary.areas.find((a) => a.name === name)?.ms ?? 0;
  const sorted = [...areaNames].sort(
    (a, b) => Math.max(...runs.map((r) => perReq(value(r, b), r.requests))) - Math.max(...runs.map((r) => perReq(value(r, a), r.requests))),
  );
  const width = Math.max(...sorted.map((n) => n.length), 10);
  const head = `  ${'area (self time)'.padEnd(width)} ${runs.map((r) => r.label.padStart(18)).join(' ')}`;
  const rows = sorted
    .slice(0, top)
    .map(
      (name) => `  ${name.padEnd(width)} ${runs.map((r) => `${perReq(value(r, name), r.requests).toFixed(1)} µs`.padStart(18)).join(' ')}`,
    );
  const total = `  ${'total sampled CPU'.padEnd(width)} ${runs.map((r) => `${perReq(r.summary.busyMs, r.requests).toFixed(1)} µs`.padStart(18)).join(' ')}`;
  const out = ['CPU per request by area (sampled self time / requests served while sampling):', head, ...rows, total];
  for (const r of runs.slice(1)) {
    const fmt = (l: ProfileLine) =>
      `  ${l.pct.toFixed(1).padStart(5)}%  ${perReq(l.ms, r.requests).toFixed(1).padStart(6)} µs/req  ${l.name}`;
    out.push('', `${r.label}: top functions by self time`, ...r.summary.self.slice(0, top).map(fmt));
    out.push(`${r.label}: Gatehouse functions (src/) by inclusive time`, ...r.summary.inclusive.slice(0, top).map(fmt));
  }
  return out.join('\n');
}
