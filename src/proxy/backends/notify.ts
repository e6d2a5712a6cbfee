import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from '../../observability/logger.ts';
import type { KeyValue } from '../../store/store.ts';

/** A backend that has been down past its notifyAfterSeconds. */
export interface DownFact {
  /** The health check's key (`GET http://orders:8080/healthz`): what replicas agree on. */
  readonly check: string;
  readonly backend: string;
  readonly downSince: number;
}

export interface RecoveredFact extends DownFact {
  readonly upAt: number;
}

export interface Notifier {
  down(fact: DownFact): void;
  recovered(fact: RecoveredFact): void;
  /** Abandons deliveries still retrying; resolves when none is in flight. */
  close(): Promise<void>;
}

/** The JSON body POSTed to NOTIFY_WEBHOOK_URL. */
export interface NotificationEvent {
  readonly event: 'backend.down' | 'backend.up';
  /** The same on every retry of one delivery: a receiver can drop repeats by it. */
  readonly id: string;
  readonly backend: string;
  readonly check: string;
  /** When the outage began, as the replica that first saw it recorded it. */
  readonly downSince: string;
  readonly upAt?: string;
  readonly downtimeSeconds?: number;
  /** The replica that sent it (hostname:pid). */
  readonly replica: string;
}

export interface NotifierOptions {
  readonly url: string;
  readonly secret: string | undefined;
  readonly store: KeyValue;
  readonly log: Logger;
  readonly replica: string;
  readonly now: () => number;
  /** Deliveries tried at most this many times (default 5). */
  readonly attempts?: number;
  /** Wait before the second attempt, doubled for each next one (default 1000 ms: 1, 2, 4, 8 s). */
  readonly retryBaseMs?: number;
  /** Per attempt (default 5000 ms). */
  readonly timeoutMs?: number;
}

/**
 * What a backend's transition is in the store, per check: `down <ms>` once an outage was announced, `up <ms>` once
 * its recovery was. The key outlives any outage worth announcing; an outage longer than this is announced again.
 */
const STATE_TTL_MS = 30 * 24 * 3600 * 1000;

/**
 * Webhook notifications, one per transition per cluster. Every replica probes on its own and may see the same
 * transition; the one whose `SET NX` (or compare-and-set from the other state) on the check's key wins sends it,
 * the others say nothing. A store that fails leaves the replicas unable to agree: the notification is sent anyway
 * (a duplicate is better than a lost outage).
 */
export function createNotifier(options: NotifierOptions): Notifier {
  const { url, secret, store, log, replica, now } = options;
  const attempts = options.attempts ?? 5;
  const retryBaseMs = options.retryBaseMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const inFlight = new Set<Promise<void>>();
  const waits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  let closed = false;
  // close() abandons a delivery under way too, rather than holding the shutdown for its timeout.
  const abandon = new AbortController();
  const key = (check: string) => `backend-health:${check}`;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const w = { timer: setTimeout(() => done(), ms).unref(), resolve: () => done() };
      const done = () => {
        clearTimeout(w.timer);
        waits.delete(w);
        resolve();
      };
      waits.add(w);
    });

  const deliver = async (event: NotificationEvent): Promise<void> => {
    const body = JSON.stringify(event);
    for (let attempt = 1; !closed; attempt++) {
      const timestamp = String(Math.floor(now() / 1000));
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'gatehouse',
        'x-gatehouse-event': event.event,
        'x-gatehouse-delivery': event.id,
        'x-gatehouse-timestamp': timestamp,
      };
      // The timestamp is signed with the body so a captured request cannot be replayed later as a new one.
      if (secret) headers['x-gatehouse-signature'] = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
      let outcome: string;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers,
          body,
          redirect: 'manual',
          signal: AbortSignal.any([abandon.signal, AbortSignal.timeout(timeoutMs)]),
        });
        await res.body?.cancel();
        if (res.status >= 200 && res.status < 300) {
          log.info({ event: event.event, backend: event.backend, id: event.id, attempt }, 'notification sent');
          return;
        }
        outcome = `status ${res.status}`;
        // The receiver refused this request as such: sending it again would be refused again.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) {
          log.error({ event: event.event, backend: event.backend, id: event.id, detail: outcome }, 'notification refused');
          return;
        }
      } catch (err) {
        outcome = (err as { cause?: { code?: string }; name?: string }).cause?.code ?? (err as Error).name;
      }
      if (attempt >= attempts) {
        log.error({ event: event.event, backend: event.backend, id: event.id, attempts, detail: outcome }, 'notification not delivered');
        return;
      }
      if (closed) {
        log.warn(
          { event: event.event, backend: event.backend, id: event.id, attempt, detail: outcome },
          'notification abandoned at shutdown',
        );
        return;
      }
      await sleep(retryBaseMs * 2 ** (attempt - 1));
    }
  };

  const send = (event: NotificationEvent) => {
    const p = deliver(event).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  /**
   * Sets the check's key to `to` when its value passes `mayFrom`, atomically (SET NX when absent, compare-and-set
   * otherwise): the value it replaced when this replica won, false when another replica did or `mayFrom` refused.
   */
  const claim = async (check: string, to: string, mayFrom: (current: string | null) => boolean): Promise<string | null | false> => {
    const k = key(check);
    const current = await store.get(k);
    if (!mayFrom(current)) return false;
    const won = current === null ? await store.setIfAbsent(k, to, STATE_TTL_MS) : await store.compareAndSet(k, current, to, STATE_TTL_MS);
    return won ? current : false;
  };

  /** Runs the store's agreement, then sends what it decided; when the store fails, sends `unagreed`. */
  const announce = (what: string, decide: () => Promise<NotificationEvent | undefined>, unagreed: NotificationEvent) => {
    const p: Promise<void> = decide()
      .then(
        (event) => event && send(event),
        (err: unknown) => {
          log.warn({ err, detail: what }, 'notification store check failed; sending without agreement');
          send(unagreed);
        },
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  const event = (kind: NotificationEvent['event'], fact: DownFact, upAt?: number): NotificationEvent => ({
    event: kind,
    id: randomUUID(),
    backend: fact.backend,
    check: fact.check,
    downSince: new Date(fact.downSince).toISOString(),
    ...(upAt !== undefined ? { upAt: new Date(upAt).toISOString(), downtimeSeconds: Math.round((upAt - fact.downSince) / 1000) } : {}),
    replica,
  });

  return {
    down(fact) {
      if (closed) return;
      const ev = event('backend.down', fact);
      announce(
        'down',
        async () =>
          (await claim(fact.check, `down ${fact.downSince}`, (c) => c === null || !c.startsWith('down '))) === false ? undefined : ev,
        ev,
      );
    },
    recovered(fact) {
      if (closed) return;
      announce(
        'up',
        async () => {
          // Only an outage that was announced has its recovery announced.
          const was = await claim(fact.check, `up ${fact.upAt}`, (c) => c !== null && c.startsWith('down '));
          if (was === false || was === null) return undefined;
          // The outage as the cluster announced it: the first replica to see it down set its start.
          const since = Number(was.slice(5));
          return event('backend.up', { ...fact, downSince: Number.isFinite(since) && since > 0 ? since : fact.downSince }, fact.upAt);
        },
        event('backend.up', fact, fact.upAt),
      );
    },
    async close() {
      closed = true;
      abandon.abort();
      for (const w of [...waits]) w.resolve();
      await Promise.allSettled([...inFlight]);
    },
  };
}
