import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { createEpochCache, type EpochCache } from '../store/epoch-cache.ts';
import type { Bus, KeyValue } from '../store/store.ts';

export type Revocation =
  | { readonly kind: 'session'; readonly key: string }
  | { readonly kind: 'jti'; readonly jti: string }
  | { readonly kind: 'user'; readonly sub: string; readonly notBefore: number };

export interface Blocklist {
  start(): Promise<void>;
  /** Blocks a session id (its store key) until `untilMs`. */
  revokeSession(key: string, untilMs: number): Promise<void>;
  /** Blocks a token id until the token would have expired anyway, plus the clock leeway verifiers allow past exp. */
  revokeJti(jti: string, untilMs: number): Promise<void>;
  /** Every session and token of `sub` issued before `notBefore` (ms) is refused, for `ttlMs`. */
  revokeUser(sub: string, notBefore: number, ttlMs: number): Promise<void>;
  isSessionRevoked(key: string): Promise<boolean>;
  isJtiRevoked(jti: string): Promise<boolean>;
  /** The user's not-before time (ms), or 0. */
  userNotBefore(sub: string): Promise<number>;
  onRevoke(listener: (r: Revocation) => void): void;
  /**
   * The cached answer for a session key, jti or user, without a store call: 0 means "not revoked"
   * (for users: no not-before), undefined means "not known here, use the async checks".
   */
  cached(kind: Kind, id: string): number | undefined;
}

const CHANNEL = 'revocation';

function ignore(): void {}

type Kind = 's' | 'j' | 'u';

/**
 * The revocation blocklist in the shared store; every entry expires when what it blocks would have.
 * Lookups are cached per process (the hot path must not pay a Redis round trip per check) and kept exact
 * by pub/sub: a revocation on any replica lands in every cache within the message latency; a dropped
 * subscription (epoch change) discards the cache, and entries are re-read at least every 10 s regardless.
 */
export function createBlocklist(deps: {
  store: KeyValue & Bus;
  log: Logger;
  /** Counts the revocations this replica writes, by kind. */
  metrics?: Pick<Metrics, 'revoked'>;
  now?: () => number;
  cacheMaxAgeMs?: number;
  jtiLeewayMs?: number;
}): Blocklist {
  const { store, log } = deps;
  const now = deps.now ?? Date.now;
  const maxAge = deps.cacheMaxAgeMs ?? 10_000;
  // Bearer verification accepts a token up to TOKEN_CLOCK_TOLERANCE_SECONDS (at most 300 s) past its exp: an entry
  // that expired with the token would let a revoked token back in for that window.
  const jtiLeewayMs = deps.jtiLeewayMs ?? 300_000;
  // One cache per kind, keyed by the id itself: the hot path looks up a session key it already holds, whose
  // hash V8 keeps on the string, instead of building and hashing "s:<key>" on every request.
  const cacheOf = () =>
    createEpochCache<number>({ subscriptionEpoch: () => store.subscriptionEpoch(), now, maxAgeMs: maxAge, maxEntries: 100_000 });
  const caches: Record<Kind, EpochCache<number>> = { s: cacheOf(), j: cacheOf(), u: cacheOf() };
  const listeners: Array<(r: Revocation) => void> = [];

  const cachedValue = (kind: Kind, id: string): number | undefined => caches[kind].get(id);

  const read = async (kind: Kind, id: string): Promise<number> => {
    let raw: string | null;
    try {
      raw = await store.get(`rv:${kind}:${id}`);
    } catch (err) {
      // Fail closed: an unreadable blocklist never reads as "not revoked".
      throw new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'revocation lookup failed' });
    }
    return raw === null ? 0 : Number(raw) || 1;
  };

  // A revocation message that arrives while a read is under way is newer than what the read saw: the cache
  // answers that read with the message's value and does not store the read's.
  const lookup = async (kind: Kind, id: string): Promise<number> => {
    const cache = caches[kind];
    const hit = cache.get(id);
    if (hit !== undefined) return hit;
    return (await cache.load(id, () => read(kind, id))) ?? 0;
  };

  const apply = (message: string) => {
    const [kind, id, extra] = message.split('\u0000');
    if (!kind || !id) return;
    let r: Revocation;
    if (kind === 's') r = { kind: 'session', key: id };
    else if (kind === 'j') r = { kind: 'jti', jti: id };
    else if (kind === 'u') r = { kind: 'user', sub: id, notBefore: Number(extra) };
    else return;
    caches[kind].invalidate(id, kind === 'u' ? Number(extra) : 1);
    for (const l of listeners) {
      try {
        l(r);
      } catch (err) {
        log.error({ err }, 'revocation listener failed');
      }
    }
  };

  const write = async (kind: Kind, id: string, value: string, ttlMs: number, message: string) => {
    if (ttlMs <= 0) return;
    const stored = store.set(`rv:${kind}:${id}`, value, ttlMs);
    // Sent right behind the SET, not after its answer: on one connection Redis runs them in this order, so a
    // revocation sent to a frozen Redis, which answers neither in time but runs both when it resumes, then
    // reaches every replica's cache at once instead of after the cache's maximum age.
    const published = store.publish(CHANNEL, message);
    try {
      await stored;
    } catch (err) {
      published.catch(ignore);
      throw new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'revocation write failed' });
    }
    apply(message);
    await published.catch((err: unknown) => log.error({ err }, 'revocation publish failed'));
  };

  return {
    start: () =>
      store.subscribe(CHANNEL, (m) => {
        // Our own publications were applied already; applying twice is harmless.
        apply(m);
      }),
    revokeSession: (key, untilMs) => write('s', key, '1', untilMs - now(), `s\u0000${key}`).then(() => deps.metrics?.revoked('session')),
    revokeJti: (jti, untilMs) =>
      write('j', jti, '1', untilMs + jtiLeewayMs - now(), `j\u0000${jti}`).then(() => deps.metrics?.revoked('jti')),
    revokeUser: (sub, notBefore, ttlMs) =>
      write('u', sub, String(notBefore), ttlMs, `u\u0000${sub}\u0000${notBefore}`).then(() => deps.metrics?.revoked('user')),
    isSessionRevoked: async (key) => (await lookup('s', key)) !== 0,
    isJtiRevoked: async (jti) => (await lookup('j', jti)) !== 0,
    userNotBefore: (sub) => lookup('u', sub),
    cached: cachedValue,
    onRevoke(listener) {
      listeners.push(listener);
    },
  };
}
