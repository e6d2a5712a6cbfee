import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { createNotifier } from '../../src/proxy/backends/notify.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import { startBackend } from '../helpers/backends.ts';
import { sleep, waitUntil } from '../helpers/token-kit.ts';

/** A webhook that answers each POST with the next status of `statuses` (the last one repeats). */
async function webhookAnswering(statuses: number[]) {
  const seen: Array<{ id: string; signature: string | undefined; at: number }> = [];
  const server = await startBackend((req, res) => {
    req.resume();
    seen.push({
      id: String(req.headers['x-gatehouse-delivery']),
      signature: req.headers['x-gatehouse-signature'] as string | undefined,
      at: Date.now(),
    });
    res.writeHead(statuses[Math.min(seen.length - 1, statuses.length - 1)] as number).end();
    return true;
  });
  return { server, seen };
}

const fact = { check: 'GET http://orders:8080/healthz', backend: 'http://orders:8080', downSince: Date.now() - 5000 };

function notifierFor(url: string, store = createMemoryStore(), retryBaseMs = 50) {
  return createNotifier({
    url,
    secret: undefined,
    store,
    log: createLogger({ level: 'silent' }),
    replica: 'test:1',
    now: Date.now,
    retryBaseMs,
  });
}

describe('notification delivery', () => {
  it('retries a failed delivery with growing waits, the same delivery id each time, until it is taken', async () => {
    const { server, seen } = await webhookAnswering([503, 500, 204]);
    const notifier = notifierFor(server.url, createMemoryStore(), 200);
    try {
      notifier.down(fact);
      await waitUntil(() => seen.length === 3, 3000, 'three attempts');
      expect(new Set(seen.map((s) => s.id)).size).toBe(1);
      // Backoff: 200 ms, then 400 ms (lower bounds only: a loaded machine adds to both).
      expect((seen[1]?.at as number) - (seen[0]?.at as number)).toBeGreaterThanOrEqual(190);
      expect((seen[2]?.at as number) - (seen[1]?.at as number)).toBeGreaterThanOrEqual(390);
      expect(seen[0]?.signature).toBeUndefined();
      await sleep(300);
      expect(seen).toHaveLength(3);
    } finally {
      await notifier.close();
      await server.close();
    }
  });

  it('gives up after five attempts, and at once on a 4xx the receiver will refuse again', async () => {
    const failing = await webhookAnswering([500]);
    const refusing = await webhookAnswering([400]);
    const a = notifierFor(failing.server.url);
    const b = notifierFor(refusing.server.url);
    try {
      a.down(fact);
      b.down(fact);
      await waitUntil(() => failing.seen.length === 5, 5000, 'five attempts');
      await sleep(1000);
      expect(failing.seen).toHaveLength(5);
      expect(refusing.seen).toHaveLength(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([failing.server.close(), refusing.server.close()]);
    }
  });

  it('one announcement per transition: a second down for the same outage, or a recovery never announced as down, sends nothing', async () => {
    const { server, seen } = await webhookAnswering([204]);
    const store = createMemoryStore();
    const one = notifierFor(server.url, store);
    const two = notifierFor(server.url, store);
    try {
      two.recovered({ ...fact, check: 'GET http://other/healthz', upAt: Date.now() });
      one.down(fact);
      two.down(fact);
      await waitUntil(() => seen.length >= 1, 2000, 'the down announcement');
      one.recovered({ ...fact, upAt: Date.now() });
      two.recovered({ ...fact, upAt: Date.now() });
      await waitUntil(() => seen.length >= 2, 2000, 'the recovery announcement');
      await sleep(300);
      expect(seen).toHaveLength(2);
    } finally {
      await Promise.all([one.close(), two.close()]);
      await server.close();
    }
  });
});
