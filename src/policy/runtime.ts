import type { Config } from '../config/types.ts';
import { loginBindingCookieName } from '../session/cookie.ts';
import { compileEdge } from './edge.ts';
import type { CorsPolicy } from './cors.ts';
import { compileOriginPolicy, type OriginPolicy } from './origin.ts';
import { compileRateLimit, DEFAULT_AUTH_LIMIT, type RateLimit } from './rate-limit.ts';
import { compileRoutes, createHostParser, type RouteTable } from './route-table.ts';
import { compileSchemas, type SchemaTable } from './schemas.ts';
import { compileTrust, trustPredicate, type TrustEvaluator } from './trust-proxy.ts';

/**
 * The admission policy compiled from one config snapshot: what `admit()` and the Express routes decide with.
 * proxy/runtime.ts adds the backend pools to it; a reload swaps both together.
 */
export interface PolicyRuntime {
  readonly config: Config;
  readonly routes: RouteTable;
  /** config.yml's `schemas`, compiled (ajv). */
  readonly schemas: SchemaTable;
  readonly origins: OriginPolicy;
  /** CORS from allowedOrigins alone: for a 404 on /api that no mapping (with its own cors) answers. */
  readonly cors: CorsPolicy;
  readonly trust: TrustEvaluator;
  readonly trusts: (ip: string, hop: number) => boolean;
  /** Host header → lowercase host and port (parseHost, memoised). */
  readonly hosts: (value: string, defaultPort: number) => { host: string; port: number } | undefined;
  /** Cookie names that never reach a backend. */
  readonly ownCookies: readonly string[];
  /** The limit on /auth/* per client IP (rateLimits.auth), or undefined when switched off. */
  readonly authLimit: RateLimit | undefined;
}

/**
 * Compiles the policy part of a runtime (at load, never per request). Throws ConfigError when config.yml holds
 * something only compiling can refuse (a schema ajv rejects, a path pattern).
 */
export function compilePolicy(config: Config): PolicyRuntime {
  return {
    config,
    routes: compileRoutes(config.routing),
    schemas: compileSchemas(config.routing.schemas),
    origins: compileOriginPolicy(config.server.origin, config.routing.allowedOrigins),
    cors: compileEdge({}, config.routing).cors,
    trust: compileTrust(config.server.trustProxy),
    trusts: trustPredicate(config.server.trustProxy),
    hosts: createHostParser(),
    ownCookies: [config.session.cookieName, loginBindingCookieName(config.session.secure)],
    // Without Redis a login flood must still be bounded: /auth counts in this process while the store is down.
    authLimit: compileRateLimit('auth', config.routing.rateLimits?.auth ?? DEFAULT_AUTH_LIMIT, 'local'),
  };
}
