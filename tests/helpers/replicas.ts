import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { startBackend, startWsBackend, type TestBackend, type TestWsBackend } from './backends.ts';
import type { TestGatehouse } from './gatehouse.ts';
import type { startIdp, TestIdp } from './idp.ts';
import { mappingsYaml } from './proxy-stack.ts';
import { useStage } from './stage.ts';

export interface Replicas {
  readonly idp: TestIdp;
  /** Echo backend behind /api/* (everything but /api/ws...). */
  readonly backend: TestBackend;
  /** WebSocket echo backend behind /api/ws... */
  readonly wsBackend: TestWsBackend;
  /** Two Gatehouse instances sharing Redis and a key prefix: replicas. The IdP's redirect URI names A. */
  readonly a: TestGatehouse;
  readonly b: TestGatehouse;
  /** A test's own connection to the shared Redis, made on first use. */
  readonly redis: Redis;
}

interface ReplicaOptions {
  idp?: Omit<Parameters<typeof startIdp>[0], 'gatehouseBaseUrls'>;
  env?: Record<string, string>;
  /** config.yml lines before `mappings:` (e.g. `rateLimits:`), the same on both replicas. */
  config?: string;
}

const replicasYaml = (backend: { url: string }, wsBackend: { url: string }, extra?: string) =>
  mappingsYaml(
    [
      { frontendHost: '*', pathPrefix: '/ws', backend: wsBackend.url },
      { frontendHost: '*', backend: backend.url },
    ],
    extra,
  );
const replicaEnv = (env: Record<string, string> | undefined) => ({ REDIS_KEY_PREFIX: `rp${randomBytes(3).toString('hex')}:`, ...env });

/**
 * Registers beforeAll/afterAll that start the multi-replica stage on the shared test Redis and close it: a real
 * IdP, an echo and a WebSocket backend, and two replicas of Gatehouse. `options` may be a function, read in
 * beforeAll (for a signing key an earlier hook made). The fields can be read from beforeAll on.
 */
export function useReplicas(options: ReplicaOptions | (() => ReplicaOptions) = {}): Replicas {
  const stage = useStage(() => {
    const { idp, env, config } = typeof options === 'function' ? options() : options;
    const shared = replicaEnv(env);
    return {
      ...(idp ? { idp } : {}),
      backends: { backend: startBackend, wsBackend: startWsBackend },
      yaml: ({ backend, wsBackend }) => replicasYaml(backend, wsBackend, config),
      gatehouse: { env: shared },
      more: { b: { env: shared } },
    };
  });
  return {
    get idp() {
      return stage.idp;
    },
    get backend() {
      return stage.backends.backend;
    },
    get wsBackend() {
      return stage.backends.wsBackend;
    },
    get a() {
      return stage.gh;
    },
    get b() {
      return stage.more.b;
    },
    get redis() {
      return stage.redis;
    },
  };
}
