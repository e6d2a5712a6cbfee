import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENV_NAMES, ENV_SCHEMA } from '../../src/config/env-schema.ts';
import { loadConfig } from '../../src/config/load.ts';
import { codeCell, firstCodeSpan, readRepoFile, tableRows, withoutCodeBlocks } from './markdown.ts';

/** The variables the original issue asked the README to explain, whatever else the schema grows. */
const README_VARIABLES = [
  'PORT',
  'HOST',
  'APP_BASE_URL',
  'NODE_ENV',
  'OIDC_ISSUER',
  'OIDC_CLIENT_ID',
  'OIDC_CLIENT_SECRET',
  'OIDC_SCOPES',
  'TOKEN_REFRESH_SKEW_SECONDS',
  'ID_TOKEN_MAX_AGE_SECONDS',
  'REDIS_URL',
  'SESSION_COOKIE_NAME',
  'SESSION_COOKIE_SECURE',
  'SESSION_COOKIE_SAMESITE',
  'SESSION_COOKIE_DOMAIN',
  'SESSION_IDLE_TTL_SECONDS',
  'SESSION_MAX_AGE_SECONDS',
  'GATEHOUSE_CONFIG',
  'ALLOWED_ORIGINS',
  'ADMIN_TOKEN',
  'LOG_LEVEL',
  'TRUST_PROXY',
] as const;

interface JsonSchemaProperty {
  readonly default?: unknown;
  readonly description?: string;
}
interface FileSchema {
  readonly properties: Record<string, JsonSchemaProperty>;
  readonly definitions: { readonly mapping: { readonly properties: Record<string, JsonSchemaProperty> } };
}

const configMd = readRepoFile('docs/config.md');
const readme = readRepoFile('README.md');
const exampleText = readRepoFile('config.example.yml');
const fileSchema = JSON.parse(readRepoFile('config.schema.json')) as FileSchema;
const topFields = Object.keys(fileSchema.properties);
const mappingFields = Object.keys(fileSchema.definitions.mapping.properties);

/** Table rows whose first cell is exactly `name` for a name in `names`: name → the row's cells. */
function documentedRows(markdown: string, names: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const cells of tableRows(markdown)) {
    const name = codeCell(cells[0]);
    if (name !== undefined && names.includes(name) && !out.has(name)) out.set(name, cells);
  }
  return out;
}

/** A schema default as the docs write it: `[]` for an empty array, the plain string otherwise. */
const asDocumented = (value: unknown) =>
  Array.isArray(value) || (typeof value === 'object' && value !== null) ? JSON.stringify(value) : String(value);

/** Rows whose default cell does not start with the schema default in backticks. */
function wrongDefaults(rows: Map<string, string[]>, schema: Record<string, JsonSchemaProperty>): string[] {
  const out: string[] = [];
  for (const [name, cells] of rows) {
    const property = schema[name];
    if (!property || !('default' in property)) continue;
    const documented = firstCodeSpan(cells[1]);
    if (documented !== asDocumented(property.default)) {
      out.push(
        `${name}: documented default ${documented === undefined ? '(none)' : `\`${documented}\``}, schema default \`${asDocumented(property.default)}\``,
      );
    }
  }
  return out;
}

describe('docs/config.md and README.md cover the environment contract', () => {
  const envRows = documentedRows(configMd, ENV_NAMES);

  it('gives every variable of ENV_SCHEMA a table row in docs/config.md', () => {
    expect(ENV_NAMES.filter((name) => !envRows.has(name))).toEqual([]);
  });

  it('documents each variable with a description', () => {
    expect([...envRows].filter(([, cells]) => (cells[2] ?? '').length < 10).map(([name]) => name)).toEqual([]);
  });

  it('documents the schema default of every variable that has one', () => {
    expect(wrongDefaults(envRows, ENV_SCHEMA.properties as Record<string, JsonSchemaProperty>)).toEqual([]);
  });

  it('documents no variable the schema does not know', () => {
    const rowNames = tableRows(configMd)
      .map((cells) => codeCell(cells[0]))
      .filter((name): name is string => name !== undefined && /^[A-Z][A-Z0-9_]+$/.test(name));
    expect(rowNames.filter((name) => !(ENV_NAMES as readonly string[]).includes(name))).toEqual([]);
  });

  it('README links the full reference and names every variable the issue listed', () => {
    expect(readme).toMatch(/\]\((\.\/)?docs\/config\.md(#[^)]*)?\)/);
    const prose = withoutCodeBlocks(readme);
    expect(README_VARIABLES.filter((name) => !new RegExp(`\\b${name}\\b`).test(prose))).toEqual([]);
  });

  it('README states the same defaults as the schema where it gives a table row', () => {
    const readmeRows = documentedRows(readme, ENV_NAMES);
    expect(wrongDefaults(readmeRows, ENV_SCHEMA.properties as Record<string, JsonSchemaProperty>)).toEqual([]);
  });
});

describe('docs/config.md covers config.schema.json', () => {
  // Top-level and mapping fields share no names, so one lookup serves both tables.
  const rows = documentedRows(configMd, [...topFields, ...mappingFields]);

  it('gives every top-level and mapping field a table row', () => {
    expect([...topFields, ...mappingFields].filter((field) => !rows.has(field))).toEqual([]);
  });

  it('documents the schema default of every field that has one', () => {
    expect(wrongDefaults(rows, { ...fileSchema.properties, ...fileSchema.definitions.mapping.properties })).toEqual([]);
  });
});

describe('config.example.yml', () => {
  const example = parse(exampleText) as { mappings?: Array<Record<string, unknown>> } & Record<string, unknown>;
  const env = {
    OIDC_ISSUER: 'https://idp.example.com',
    OIDC_CLIENT_ID: 'gatehouse',
    APP_BASE_URL: 'https://app.example.com',
    GATEHOUSE_CONFIG: 'config.example.yml',
    // The one ${VAR} without a default in the example; the others fall back to theirs.
    TENANT_BACKEND_URL: 'http://tenant-api.internal:8080',
  };

  it('shows every top-level field as a real key (not only in a comment)', () => {
    expect(topFields.filter((field) => !(field in example))).toEqual([]);
  });

  it('shows every mapping field in at least one mapping', () => {
    const used = new Set((example.mappings ?? []).flatMap((m) => Object.keys(m)));
    expect(mappingFields.filter((field) => !used.has(field))).toEqual([]);
  });

  it('shows an exact host with a prefix, a wildcard host, the three auth policies, and websocket: false', () => {
    const mappings = example.mappings ?? [];
    expect(mappings.some((m) => typeof m['frontendHost'] === 'string' && !m['frontendHost'].includes('*') && m['pathPrefix'])).toBe(true);
    expect(mappings.some((m) => typeof m['frontendHost'] === 'string' && m['frontendHost'].startsWith('*.'))).toBe(true);
    expect(new Set(mappings.map((m) => m['auth'] ?? 'required'))).toEqual(new Set(['required', 'optional', 'none']));
    expect(mappings.some((m) => m['websocket'] === false)).toBe(true);
    expect(mappings.some((m) => m['identityHeaders'] !== undefined && m['timeoutMs'] !== undefined)).toBe(true);
  });

  it('loads cleanly through loadConfig, with ${VAR} and ${VAR:-default} resolved', () => {
    const config = loadConfig(env, { readFile: () => exampleText });
    expect(config.routing.mappings).toHaveLength(example.mappings?.length ?? -1);
    expect(config.routing.defaultBackend).toBe('http://api.internal:8080');
    expect(config.routing.mappings.some((m) => m.backend === env.TENANT_BACKEND_URL)).toBe(true);
    expect(config.routing.allowedOrigins).toContain('https://staging.example.com');
  });

  it('uses no ${VAR} without a default other than the ones this test provides', () => {
    const strings = (value: unknown): string[] =>
      typeof value === 'string' ? [value] : value && typeof value === 'object' ? Object.values(value).flatMap(strings) : [];
    const required = strings(example).flatMap((s) => [...s.matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => m[1] as string));
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((name) => !(name in env))).toEqual([]);
  });

  it('names its ${VAR} references in a way loadConfig reports when unset', () => {
    const { TENANT_BACKEND_URL: _unset, ...withoutTenant } = env;
    expect(() => loadConfig(withoutTenant, { readFile: () => exampleText })).toThrow(
      /refers to \$\{TENANT_BACKEND_URL\}, which is not set/,
    );
  });
});
