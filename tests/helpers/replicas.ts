import { randomBytes } from 'node:crypto';
import { startBackend, startWsBackend, type TestBackend, type TestWsBackend } from './backends.ts';
import { reservePort, startGatehouse, type TestGatehouse } from './gatehouse.ts';
import { startIdp, type TestIdp } from './idp.ts';

export interface Replicas {
  readonly idp: TestIdp;
  /** Echo backend behind /api/* (everything but /api/ws...). */
  readonly backend: TestBackend;
  /** WebSocket echo backend behind /api/ws... */
  readonly wsBackend: TestWsBackend;
  /** Two Gatehouse instances sharing Redis and a key prefix: replicas. The IdP's redirect URI names A. */
  readonly a: TestGatehouse;
  readonly b: TestGatehouse;
  close(): Promise<void>;
}

/** The multi-replica stage: a real IdP, an echo and a WebSocket backend, and two replicas of Gatehouse. */
export async function startReplicas(options: {
  redisUrl: string;
  idp?: Omit<Parameters<typeof startIdp>[0], 'gatehouseBaseUrls'>;
  env?: Record<string, string>;
}): Promise<Replicas> {
  const backend = await startBackend();
  const wsBackend = await startWsBackend();
  const pa = await reservePort();
  const idp = await startIdp({ ...options.idp, gatehouseBaseUrls: [pa.url] });
  const yaml = `mappings:\n  - frontendHost: "*"\n    pathPrefix: "/ws"\n    backend: "${wsBackend.url}"\n  - frontendHost: "*"\n    backend: "${backend.url}"\n`;
  const env = { REDIS_KEY_PREFIX: `rp${randomBytes(3).toString('hex')}:`, ...options.env };
  const a = await startGatehouse({ idp, redisUrl: options.redisUrl, port: pa.port, yaml, env });
  const b = await startGatehouse({ idp, redisUrl: options.redisUrl, yaml, env });
  return {
    idp, backend, wsBackend, a, b,
    async close() {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([idp.close(), backend.close(), wsBackend.close()]);
    },
  };
}
