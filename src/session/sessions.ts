import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import { isWellFormedId, newSessionId, openTokens, sealTokens, storeKeyOf } from './crypto.ts';

export interface UserClaims {
  readonly sub: string;
  readonly email?: string;
  readonly name?: string;
  readonly [claim: string]: unknown;
}

export interface SessionTokens {
  readonly accessToken: string;
  readonly refreshToken?: string;
  readonly idToken?: string;
}

/** What the store holds (tokens sealed). `ver` grows on every content write so a slow writer never overwrites a newer session. */
interface SessionRecord {
  v: 1;
  ver: number;
  sub: string;
  sid?: string;
  claims: UserClaims;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  accessTokenExpiresAt?: number;
  tok: string;
}

export interface Session {
  /** Hash of the cookie value: the store key and the id used in logs, admin calls and invalidation messages. */
  readonly key: string;
  readonly sub: string;
  /** The IdP's session id (`sid` claim), for back-channel logout. */
  readonly sid?: string;
  readonly claims: UserClaims;
  readonly tokens: SessionTokens;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  /** Absolute end (ms since epoch); never extended. */
  readonly expiresAt: number;
  readonly idleExpiresAt: number;
  readonly accessTokenExpiresAt?: number;
  readonly version: number;
}

export interface NewSession {
  readonly claims: UserClaims;
  readonly sid?: string;
  readonly tokens: SessionTokens;
  readonly accessTokenExpiresAt?: number;
}

export interface SessionManagerOptions {
  readonly store: Store;
  readonly log: Logger;
  readonly idleTtlSeconds: number;
  readonly maxAgeSeconds: number;
  readonly now?: () => number;
  /** Longest a cached session is served without a store read (defence in depth beside pub/sub invalidation). */
  readonly cacheMaxAgeMs?: number;
  readonly cacheMaxEntries?: number;
}

interface CacheEntry {
  session: Session;
  raw: string;
  epoch: number;
  cachedAt: number;
  touching: boolean;
}

export interface SessionManager {
  /** Creates a brand-new session (fresh id: a cookie the browser brought is never reused). */
  create(input: NewSession): Promise<{ id: string; session: Session }>;
  /** The live session for a cookie value, or undefined. Throws session_store_unavailable when the store fails (fail closed). */
  load(cookieValue: string | undefined): Promise<Session | undefined>;
  /** Rolls the idle timeout forward, at most once per touch interval, without delaying the caller. */
  touch(session: Session): void;
  destroy(key: string): Promise<void>;
  /** Called with the session key whenever any replica deletes or rewrites a session. */
  onInvalidate(listener: (key: string) => void): void;
  /** Number of cached sessions (metrics and tests). */
  cacheSize(): number;
  start(): Promise<void>;
}

const INVALIDATE_CHANNEL = 'session-invalidate';
const sessionKey = (key: string) => `s:${key}`;
export const userIndexKey = (sub: string) => `su:${sub}`;
export const sidIndexKey = (sid: string) => `ss:${sid}`;

export function createSessionManager(options: SessionManagerOptions): SessionManager {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const idleMs = options.idleTtlSeconds * 1000;
  const maxAgeMs = options.maxAgeSeconds * 1000;
  const touchIntervalMs = Math.min(60_000, Math.max(250, idleMs / 10));
  const cacheMaxAgeMs = options.cacheMaxAgeMs ?? 10_000;
  const cacheMaxEntries = options.cacheMaxEntries ?? 50_000;
  const cache = new Map<string, CacheEntry>();
  const listeners: Array<(key: string) => void> = [];
  const idByKey = new WeakMap<Session, string>();

  const ttlFor = (record: SessionRecord, at: number) => Math.min(record.lastSeenAt + idleMs, record.expiresAt) - at;

  const toSession = (key: string, record: SessionRecord, tokens: SessionTokens): Session => ({
    key,
    sub: record.sub,
    ...(record.sid ? { sid: record.sid } : {}),
    claims: record.claims,
    tokens,
    createdAt: record.createdAt,
    lastSeenAt: record.lastSeenAt,
    expiresAt: record.expiresAt,
    idleExpiresAt: Math.min(record.lastSeenAt + idleMs, record.expiresAt),
    ...(record.accessTokenExpiresAt !== undefined ? { accessTokenExpiresAt: record.accessTokenExpiresAt } : {}),
    version: record.ver,
  });

  const remember = (session: Session, raw: string, id: string) => {
    const epoch = store.subscriptionEpoch();
    if (epoch === 0) return;
    if (cache.size >= cacheMaxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    idByKey.set(session, id);
    cache.set(session.key, { session, raw, epoch, cachedAt: now(), touching: false });
  };

  const invalidateLocal = (key: string) => {
    cache.delete(key);
    for (const l of listeners) {
      try {
        l(key);
      } catch (err) {
        log.error({ err }, 'session invalidation listener failed');
      }
    }
  };

  const storeFailure = (err: unknown) => new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'session store call failed' });

  return {
    async start() {
      await store.subscribe(INVALIDATE_CHANNEL, invalidateLocal);
    },

    async create(input) {
      const id = newSessionId();
      const key = storeKeyOf(id);
      const at = now();
      const record: SessionRecord = {
        v: 1,
        ver: 1,
        sub: input.claims.sub,
        ...(input.sid ? { sid: input.sid } : {}),
        claims: input.claims,
        createdAt: at,
        lastSeenAt: at,
        expiresAt: at + maxAgeMs,
        ...(input.accessTokenExpiresAt !== undefined ? { accessTokenExpiresAt: input.accessTokenExpiresAt } : {}),
        tok: sealTokens(id, key, JSON.stringify(input.tokens)),
      };
      const raw = JSON.stringify(record);
      try {
        await store.set(sessionKey(key), raw, ttlFor(record, at));
        await store.setAdd(userIndexKey(record.sub), key, maxAgeMs);
        if (record.sid) await store.setAdd(sidIndexKey(record.sid), key, maxAgeMs);
      } catch (err) {
        throw storeFailure(err);
      }
      const session = toSession(key, record, input.tokens);
      remember(session, raw, id);
      return { id, session };
    },

    async load(cookieValue) {
      if (!isWellFormedId(cookieValue)) return undefined;
      const key = storeKeyOf(cookieValue);
      const at = now();
      const hit = cache.get(key);
      if (hit) {
        const epoch = store.subscriptionEpoch();
        if (hit.epoch === epoch && at - hit.cachedAt < cacheMaxAgeMs && at < hit.session.idleExpiresAt && idByKey.get(hit.session) === cookieValue) {
          return hit.session;
        }
        cache.delete(key);
      }
      let raw: string | null;
      try {
        raw = await store.get(sessionKey(key));
      } catch (err) {
        throw storeFailure(err);
      }
      if (raw === null) return undefined;
      let record: SessionRecord;
      try {
        record = JSON.parse(raw) as SessionRecord;
      } catch {
        log.warn({ session: key }, 'unreadable session record ignored');
        return undefined;
      }
      if (record.v !== 1 || at >= record.expiresAt || at >= record.lastSeenAt + idleMs) return undefined;
      const opened = openTokens(cookieValue, key, record.tok);
      if (opened === undefined) {
        log.warn({ session: key }, 'session tokens did not decrypt with the presented id');
        return undefined;
      }
      const session = toSession(key, record, JSON.parse(opened) as SessionTokens);
      remember(session, raw, cookieValue);
      return session;
    },

    touch(session) {
      const at = now();
      if (at - session.lastSeenAt < touchIntervalMs) return;
      const entry = cache.get(session.key);
      if (entry?.touching) return;
      if (entry) entry.touching = true;
      void (async () => {
        const raw = entry?.raw ?? (await store.get(sessionKey(session.key)));
        if (!raw) return;
        const record = JSON.parse(raw) as SessionRecord;
        const next: SessionRecord = { ...record, lastSeenAt: at };
        const nextRaw = JSON.stringify(next);
        const ok = await store.compareAndSet(sessionKey(session.key), raw, nextRaw, ttlFor(next, at));
        const current = cache.get(session.key);
        if (ok && current === entry && entry) {
          const updated = toSession(session.key, next, session.tokens);
          const id = idByKey.get(entry.session);
          if (id) idByKey.set(updated, id);
          entry.session = updated;
          entry.raw = nextRaw;
        } else {
          // Someone else rewrote it (refresh, another replica's touch): read it afresh next time.
          cache.delete(session.key);
        }
      })()
        .catch((err: unknown) => log.warn({ err, session: session.key }, 'session touch failed'))
        .finally(() => {
          if (entry) entry.touching = false;
        });
    },

    async destroy(key) {
      try {
        await store.del(sessionKey(key));
      } catch (err) {
        throw storeFailure(err);
      }
      invalidateLocal(key);
      await store.publish(INVALIDATE_CHANNEL, key).catch((err: unknown) => log.error({ err }, 'session invalidation publish failed'));
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },

    cacheSize: () => cache.size,
  };
}
