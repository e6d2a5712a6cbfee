import type { Config } from '../config/types.ts';
import { compilePolicy, type PolicyRuntime } from '../policy/runtime.ts';
import { createPools, type Pools } from './forward.ts';

/**
 * Everything compiled from one config snapshot: the admission policy and the backend pools. A reload builds a
 * new Runtime and swaps one reference; requests keep the snapshot they started with, and the old pools close
 * once drained.
 */
export interface Runtime extends PolicyRuntime {
  readonly pools: Pools;
  close(): Promise<void>;
}

export function createRuntime(config: Config): Runtime {
  const pools = createPools();
  return {
    ...compilePolicy(config),
    pools,
    close: () => pools.close(),
  };
}
