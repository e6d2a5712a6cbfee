import type { Config } from '../config/types.ts';
import { compilePolicy, type PolicyRuntime } from '../policy/runtime.ts';
import type { Route } from '../policy/route-table.ts';
import type { Backends } from './backends/registry.ts';
import { RouteGuard } from './backends/guard.ts';
import { createPools, type Pools } from './forward.ts';

/**
 * Everything compiled from one config snapshot: the admission policy, the backend pools and the per-mapping guards
 * (limits, health, circuit). A reload builds a new Runtime and swaps one reference; requests keep the snapshot they
 * started with, and the old pools close once drained. Health and circuit state live in `Backends`, across snapshots.
 */
export interface Runtime extends PolicyRuntime {
  readonly pools: Pools;
  /** The guard of a route: `guards[route.index + 1]` (slot 0, defaultBackend's, is never guarded). */
  readonly guards: readonly RouteGuard[];
  close(): Promise<void>;
}

const UNGUARDED: readonly RouteGuard[] = [
  new RouteGuard({ maxConcurrent: undefined, maxStreams: undefined, health: undefined, breaker: undefined, fallback: undefined }),
];

/** `backends` follows this configuration (new checks start, removed ones stop); without it nothing is guarded. */
export function createRuntime(config: Config, backends?: Backends): Runtime {
  const pools = createPools();
  const policy = compilePolicy(config);
  const guards = backends ? backends.compile(config.routing) : config.routing.mappings.map(() => UNGUARDED[0] as RouteGuard);
  return {
    ...policy,
    pools,
    guards: backends ? guards : [...UNGUARDED, ...guards],
    close: () => pools.close(),
  };
}

/** The guard admission stage 9 consults for `route`. */
export function guardOf(rt: Runtime, route: Route): RouteGuard {
  return rt.guards[route.index + 1] as RouteGuard;
}
