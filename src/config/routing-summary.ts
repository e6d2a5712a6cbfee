import type { FileConfig, MappingConfig } from './types.ts';

/** One mapping as an operator reads it: where it listens, where it goes, and its policy. */
export function describeMapping(m: MappingConfig): string {
  const where = `${m.frontendHost}${m.frontendPort === undefined ? '' : `:${m.frontendPort}`} /api${m.pathPrefix ?? ''}`;
  const traits = [`auth ${m.auth}`, m.websocket ? 'websocket' : 'no websocket', `timeout ${m.timeoutMs} ms`];
  return `${where} → ${m.backend} (${traits.join(', ')})`;
}

/** The routing a config serves, a line per mapping (`gatehouse check` and the start-up log). */
export function routingLines(routing: FileConfig): string[] {
  const lines = routing.mappings.map((m, i) => `#${i}  ${describeMapping(m)}`);
  if (routing.defaultBackend) lines.push(`default  any host, any /api path → ${routing.defaultBackend} (auth none)`);
  if (lines.length === 0) lines.push('(none: every /api request answers 404 not_found)');
  return lines;
}
