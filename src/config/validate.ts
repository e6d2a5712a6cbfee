import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

function isHttpUrl(value: string, allowPath: boolean): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.username || url.password || url.search || url.hash) return false;
  return allowPath || url.pathname === '/';
}

/** One ajv instance per schema compile, with the formats our schemas use. */
export function compileSchema<T>(schema: object, options: { coerceTypes?: boolean } = {}): ValidateFunction<T> {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: options.coerceTypes ?? false, strict: false });
  ajv.addFormat('http-url', (v: string) => isHttpUrl(v, true));
  ajv.addFormat('backend-url', (v: string) => isHttpUrl(v, true));
  // No path: Gatehouse serves /auth, /api and the SPA at the root of its origin.
  ajv.addFormat('base-url', (v: string) => isHttpUrl(v, false));
  ajv.addFormat('origin', (v: string) => isHttpUrl(v, false) && new URL(v).origin === v);
  return ajv.compile<T>(schema);
}

/** Turns ajv errors into lines naming the source and the field path. */
export function describeErrors(source: string, errors: readonly ErrorObject[] | null | undefined, pathStyle: 'pointer' | 'name'): string[] {
  return (errors ?? []).map((e) => {
    let field = e.instancePath;
    if (e.keyword === 'required') field += `/${String(e.params['missingProperty'])}`;
    if (e.keyword === 'additionalProperties') field += `/${String(e.params['additionalProperty'])}`;
    if (pathStyle === 'name') field = field.replace(/^\//, '');
    const reason =
      e.keyword === 'additionalProperties'
        ? 'is not a known field'
        : e.keyword === 'required'
          ? 'is required'
          : e.keyword === 'enum'
            ? `must be one of ${(e.params['allowedValues'] as unknown[]).join(', ')}`
            : (e.message ?? 'is invalid');
    return `${source} ${field || '(root)'}: ${reason}`;
  });
}
