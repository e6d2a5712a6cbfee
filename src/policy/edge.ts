import type { FileConfig, MappingConfig } from '../config/types.ts';
import { compileCors, CORS_DEFAULTS, type CorsPolicy } from './cors.ts';
import type { CsrfPolicy } from './csrf.ts';

/** A mapping's edge policy (CORS answers and CSRF check), compiled with its route when a configuration loads. */
export interface EdgePolicy {
  readonly cors: CorsPolicy;
  readonly csrf: CsrfPolicy;
}

/**
 * The mapping's `csrf` and `cors` over the top-level `csrf` and `allowedOrigins` (ALLOWED_ORIGINS merged in).
 * A mapping's `cors.origins` replaces the global list for that mapping: CORS, CSRF and WebSocket Origin checks
 * all read the same list, so an origin CORS lets call can also send what CSRF checks, and no other can.
 */
export function compileEdge(m: Pick<MappingConfig, 'csrf' | 'cors'>, file: Pick<FileConfig, 'allowedOrigins' | 'csrf'>): EdgePolicy {
  const own = m.csrf?.requireHeader;
  const header = own === false ? undefined : (own ?? file.csrf?.requireHeader);
  const csrf: CsrfPolicy = {
    header: header ? { name: header.name, lower: header.name.toLowerCase(), value: header.value ?? '1' } : undefined,
    allowMissingOrigin: m.csrf?.allowMissingOrigin ?? false,
  };
  // The CSRF header is always allowed: a preflight that refused it would leave an allowed origin unable to send the
  // header its own unsafe calls must carry.
  const listed = m.cors?.allowedHeaders ?? CORS_DEFAULTS.allowedHeaders;
  const allowedHeaders = header && !listed.some((h) => h.toLowerCase() === header.name.toLowerCase()) ? [...listed, header.name] : listed;
  return {
    csrf,
    cors: compileCors({
      origins: m.cors?.origins ?? file.allowedOrigins,
      allowedHeaders,
      exposedHeaders: m.cors?.exposedHeaders ?? CORS_DEFAULTS.exposedHeaders,
      maxAgeSeconds: m.cors?.maxAgeSeconds ?? CORS_DEFAULTS.maxAgeSeconds,
    }),
  };
}
