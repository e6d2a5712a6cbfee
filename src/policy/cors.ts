import cors, { type CorsOptions } from 'cors';

/** What a mapping's CORS answer is built from: `cors` in config.yml, else allowedOrigins and these defaults. */
export interface CorsSettings {
  readonly origins: readonly string[];
  readonly allowedHeaders: readonly string[];
  readonly exposedHeaders: readonly string[];
  readonly maxAgeSeconds: number;
}

export const CORS_DEFAULTS = {
  allowedHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-Request-Id'],
  exposedHeaders: ['X-Request-Id'],
  maxAgeSeconds: 600,
} as const;

/** The unsafe methods CSRF guards, plus the safe ones: what a preflight may ask for. */
const METHODS = 'GET,HEAD,POST,PUT,PATCH,DELETE';

/**
 * One mapping's CORS answers, computed when the configuration loads: a lookup per request, never a header
 * computed from the request (docs/performance.md has the numbers that chose this over calling `cors` per request).
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
export interface CorsPolicy {
  /** Some origin may call this mapping: every answer then varies with Origin. */
  readonly enabled: boolean;
  /** Exact (ASCII case-insensitive) match against the configured origins; `null` and absent never match. */
  allows(origin: string | undefined): boolean;
  /** Headers for an actual response ([name, value, ...]): the allowed origin's, `Vary: Origin` alone, or none. */
  actual(origin: string | undefined): readonly string[] | undefined;
  /** Headers for a preflight from an allowed origin; undefined: refused. */
  preflight(origin: string): readonly string[] | undefined;
}

/** Runs the `cors` package once on a recording response, and keeps the headers it set. */
function headersFrom(options: CorsOptions, method: string): readonly string[] {
  const set = new Map<string, string>();
  const res = {
    statusCode: 200,
    getHeader: (name: string) => set.get(name.toLowerCase()),
    setHeader(name: string, value: string) {
      set.set(name.toLowerCase(), String(value));
      return res;
    },
    end() {},
  };
  cors(options)({ method, headers: {} }, res, () => {});
  const out: string[] = [];
  for (const [name, value] of set) if (name !== 'content-length') out.push(name, value);
  return Object.freeze(out);
}

const VARY_ONLY: readonly string[] = Object.freeze(['vary', 'Origin']);

/**
 * Compiles one mapping's CORS answers with the `cors` package's own rules (a fixed origin per answer, so it never
 * reflects what a request sent): credentials allowed, so never `*`; an origin not listed gets no CORS header at all.
 */
export function compileCors(settings: CorsSettings): CorsPolicy {
  const answers = new Map<string, { actual: readonly string[]; preflight: readonly string[] }>();
  for (const origin of settings.origins) {
    const options: CorsOptions = {
      origin,
      credentials: true,
      methods: METHODS,
      allowedHeaders: [...settings.allowedHeaders],
      ...(settings.exposedHeaders.length > 0 ? { exposedHeaders: [...settings.exposedHeaders] } : {}),
      maxAge: settings.maxAgeSeconds,
    };
    answers.set(origin.toLowerCase(), { actual: headersFrom(options, 'GET'), preflight: headersFrom(options, 'OPTIONS') });
  }
  const enabled = answers.size > 0;
  const find = (origin: string | undefined) =>
    origin === undefined ? undefined : (answers.get(origin) ?? answers.get(origin.toLowerCase()));
  return {
    enabled,
    allows: (origin) => find(origin) !== undefined,
    actual: (origin) => (enabled ? (find(origin)?.actual ?? VARY_ONLY) : undefined),
    preflight: (origin) => find(origin)?.preflight,
  };
}
