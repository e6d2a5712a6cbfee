import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { FileConfig, JsonSchemaObject, SchemaEntryConfig } from './types.ts';

/**
 * Bounds on a schema from config.yml, inline or read for a `$ref` (AJV security, "untrusted schemas": compiling a
 * deep schema overflows the stack, a huge one is slow). Checked here, without recursion, before anything walks the
 * schema recursively (the loader's deep-freeze, ajv's compile).
 */
export const SCHEMA_BOUNDS = Object.freeze({ maxBytes: 1024 * 1024, maxDepth: 64 });

const PARTS = ['body', 'query'] as const;

/**
 * Replaces each `schemas[i].body` / `.query` that is `{ $ref: "file.json" }` by that file's JSON, read relative to
 * config.yml and only from its folder (a config must not make Gatehouse read, and quote in an error, any file on
 * the host), and bounds every schema (SCHEMA_BOUNDS). Also checks that each entry names its methods once. Problems name the entry; the entries are rewritten in
 * place (`file` is the loader's own fresh copy).
 */
export function resolveSchemaRefs(
  file: FileConfig,
  configPath: string,
  readFile: (p: string) => string,
  source: string,
  problems: string[],
): void {
  const entries = file.schemas as SchemaEntryConfig[] | undefined;
  if (!entries) return;
  const dir = dirname(resolve(configPath));
  entries.forEach((entry, i) => {
    const at = `${source} /schemas/${i}`;
    if ((entry.method === undefined) === (entry.methods === undefined))
      problems.push(`${at}: give exactly one of method (e.g. POST) and methods (e.g. [PUT, PATCH])`);
    for (const part of PARTS) {
      const schema = entry[part];
      if (schema === undefined) continue;
      const ref = schema['$ref'];
      if (typeof ref !== 'string' || ref.startsWith('#')) {
        const bounds = schemaBoundsProblem(schema);
        if (bounds !== undefined) problems.push(`${at}/${part}: ${bounds}`);
        continue;
      }
      if (Object.keys(schema).length !== 1) {
        problems.push(`${at}/${part}: a $ref to a file stands alone ({ $ref: "schemas/x.json" }); put the other keywords in the file`);
        continue;
      }
      const loaded = readSchemaFile(ref, dir, readFile);
      const bounds = typeof loaded === 'string' ? undefined : schemaBoundsProblem(loaded);
      if (typeof loaded === 'string') problems.push(`${at}/${part}: $ref "${ref}" ${loaded}`);
      else if (bounds !== undefined) problems.push(`${at}/${part}: $ref "${ref}" ${bounds}`);
      else (entry as { -readonly [K in (typeof PARTS)[number]]?: JsonSchemaObject })[part] = loaded;
    }
  });
}

function readSchemaFile(ref: string, dir: string, readFile: (p: string) => string): JsonSchemaObject | string {
  if (!ref.endsWith('.json') || isAbsolute(ref) || ref.includes('\0')) return 'must name a .json file by a path relative to config.yml';
  const path = resolve(dir, ref);
  const rel = relative(dir, path);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) return "must stay inside config.yml's folder";
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  if (Buffer.byteLength(text) > SCHEMA_BOUNDS.maxBytes) return `is larger than ${SCHEMA_BOUNDS.maxBytes} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Never the parser's message: it quotes the file's text.
    return 'is not valid JSON';
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'must hold a JSON object (a schema)';
  return value as JsonSchemaObject;
}

/** Why a schema is out of bounds, found without recursion; undefined when it is within them. */
export function schemaBoundsProblem(schema: JsonSchemaObject): string | undefined {
  const pending: Array<[unknown, number]> = [[schema, 1]];
  while (pending.length > 0) {
    const [value, depth] = pending.pop() as [unknown, number];
    if (value === null || typeof value !== 'object') continue;
    if (depth > SCHEMA_BOUNDS.maxDepth) return `is nested deeper than ${SCHEMA_BOUNDS.maxDepth} levels`;
    for (const inner of Object.values(value)) pending.push([inner, depth + 1]);
  }
  if (JSON.stringify(schema).length > SCHEMA_BOUNDS.maxBytes) return `is larger than ${SCHEMA_BOUNDS.maxBytes} bytes`;
  return undefined;
}
