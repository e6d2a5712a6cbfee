import type { Config } from '../config/types.ts';
import { loginBindingCookieName } from '../session/cookie.ts';
import { compileOriginPolicy, type OriginPolicy } from '../policy/origin.ts';
import { compileTrust, trustPredicate, type TrustEvaluator } from '../policy/trust-proxy.ts';
import { createPools, type Pools } from './forward.ts';
import { compileRoutes, createHostParser, type RouteTable } from './routes.ts';

/**
 * Everything compiled from one config snapshot. A reload builds a new Runtime and swaps one reference;
 * requests keep the snapshot they started with, and the old pools close once drained.
 */
export interface Runtime {
  readonly config: Config;
  readonly routes: RouteTable;
  readonly origins: OriginPolicy;
  readonly trust: TrustEvaluator;
  readonly trusts: (ip: string, hop: number) => boolean;
  readonly pools: Pools;
  /** Host header → lowercase host and port (parseHost, memoised). */
  readonly hosts: (value: string, defaultPort: number) => { host: string; port: number } | undefined;
  /** Cookie names that never reach a backend. */
  readonly ownCookies: readonly string[];
  close(): Promise<void>;
}

export function createRuntime(config: Config): Runtime {
  const pools = createPools();
  return {
    config,
    routes: compileRoutes(config.routing),
    origins: compileOriginPolicy(config.server.origin, config.routing.allowedOrigins),
    trust: compileTrust(config.server.trustProxy),
    trusts: trustPredicate(config.server.trustProxy),
    pools,
    hosts: createHostParser(),
    ownCookies: [config.session.cookieName, loginBindingCookieName(config.session.secure)],
    close: () => pools.close(),
  };
}
