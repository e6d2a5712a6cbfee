import type { TestProject } from 'vitest/node';
import { startRedis, type RedisServer } from './helpers/redis.ts';

let redis: RedisServer | undefined;

/** One real redis-server for the run (REDIS_URL wins when set); tests isolate themselves by key prefix. */
export async function setup(project: TestProject): Promise<void> {
  let url = process.env['REDIS_URL'];
  if (!url) {
    redis = await startRedis();
    url = redis.url;
  }
  project.provide('redisUrl', url);
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
