import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Bus, KeyValue } from '../store/store.ts';
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
  /** jti of the access token when it is a JWT (revocation by jti). */
  atJti?: string;
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
  readonly accessTokenJti?: string;
  readonly version: number;
}

export interface NewSession {
  readonly claims: UserClaims;
  readonly sid?: string;
  readonly tokens: SessionTokens;
  readonly accessTokenExpiresAt?: number;
  readonly accessTokenJti?: string;
}

export type InvalidationKind = 'destroyed' | 'updated';

export interface SessionManagerOptions {
  readonly store: KeyValue & Bus;
  readonly log: Logger;
  readonly idleTtlSeconds: number;
  readonly maxAgeSeconds: number;
  readonly now?: () => number;
  /** Longest a cached session is served without a store read (defence in depth beside pub/sub invalidation). */
  readonly cacheMaxAgeMs?: number;
  readonly cacheMaxEntries?: number;
}

interface CacheEntry {
  /** The cookie value this entry was filled for. */
  id: string;
  session: Session;
  raw: string;
  epoch: number;
  cachedAt: number;
  touching: boolean;
}

export interface SessionManager {
  /** Creates a brand-new session (fresh id: a cookie the browser brought is never reused). */
  create(input: NewSession): Promise<{ id: string; session: Session }>;
  /**
   * The live session for a cookie value, or undefined. Throws session_store_unavailable when the store
   * fails (fail closed). `fresh` skips the process cache.
   */
  load(cookieValue: string | undefined, options?: { fresh?: boolean }): Promise<Session | undefined>;
  /** The cached live session for a cookie value, synchronously; undefined means "ask load()". */
  peek(cookieValue: string | undefined): Session | undefined;
  /**
   * Stores new tokens if the session is still at `session.version` (else returns what the store has now,
   * so a slow writer never overwrites a newer session). Undefined when the session is gone.
   */
  replaceTokens(id: string, session: Session, tokens: SessionTokens, accessTokenExpiresAt: number | undefined, accessTokenJti: string | undefined): Promise<Session | undefined>;
  /** Rolls the idle timeout forward, at most once per touch interval, without delaying the caller. */
  touch(session: Session): void;
  destroy(key: string): Promise<void>;
  /** Destroys every session of a user (index by `sub`); returns how many there were. */
  destroyUser(sub: string): Promise<number>;
  /** Destroys the sessions tied to an IdP session id (back-channel logout), optionally only those of `sub`. */
  destroyBySid(sid: string, sub?: string): Promise<number>;
  /** Called with the session key whenever any replica deletes or rewrites a session. */
  onInvalidate(listener: (key: string, kind: InvalidationKind) => void): void;
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
  // Keyed by the cookie value, so a hit costs no hash; cookieOf maps store keys back for invalidation.
  const cache = new Map<string, CacheEntry>();
  const cookieOf = new Map<string, string>();
  const forget = (key: string) => {
    const id = cookieOf.get(key);
    if (id === undefined) return;
    cache.delete(id);
    cookieOf.delete(key);
  };
  const entryOf = (key: string): CacheEntry | undefined => {
    const id = cookieOf.get(key);
    return id === undefined ? undefined : cache.get(id);
  };
  const usable = (hit: CacheEntry, at: number) =>
    hit.epoch === store.subscriptionEpoch() && at - hit.cachedAt < cacheMaxAgeMs && at < hit.session.idleExpiresAt;
  const listeners: Array<(key: string, kind: InvalidationKind) => void> = [];

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
    ...(record.atJti ? { accessTokenJti: record.atJti } : {}),
    version: record.ver,
  });

  // Reads under way, by cookie value: concurrent misses for one session share one store read, and an
  // invalidation that lands during a read keeps that read's answer out of the cache (it may predate the
  // delete or rewrite the message announces) and sends later callers to a read of their own.
  interface Reading { readonly cookie: string; readonly key: string; promise?: Promise<Session | undefined>; invalidated: boolean }
  const reading = new Map<string, Reading>();
  const readingByKey = new Map<string, Set<Reading>>();

  const remember = (session: Session, raw: string, id: string, readEpoch?: number) => {
    const epoch = store.subscriptionEpoch();
    // Messages sent while the subscription was down are lost: a read that spans a reconnect is not cached.
    if (epoch === 0 || (readEpoch !== undefined && readEpoch !== epoch)) return;
    if (cache.size >= cacheMaxEntries) {
      const oldest = cache.values().next().value;
      if (oldest !== undefined) forget(oldest.session.key);
    }
    forget(session.key);
    cache.set(id, { id, session, raw, epoch, cachedAt: now(), touching: false });
    cookieOf.set(session.key, id);
  };

  const invalidateLocal = (message: string) => {
    const kind: InvalidationKind = message.startsWith('u:') ? 'updated' : 'destroyed';
    const key = message.slice(2);
    forget(key);
    for (const pending of readingByKey.get(key) ?? []) {
      pending.invalidated = true;
      if (reading.get(pending.cookie) === pending) reading.delete(pending.cookie);
    }
    for (const l of listeners) {
      try {
        l(key, kind);
      } catch (err) {
        log.error({ err }, 'session invalidation listener failed');
      }
    }
  };

  /** One store read of a session; caches the answer unless an invalidation or a reconnect came in between. */
  const read = async (cookieValue: string, key: string, entry: Reading): Promise<Session | undefined> => {
    const readEpoch = store.subscriptionEpoch();
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
    const at = now();
    if (record.v !== 1 || at >= record.expiresAt || at >= record.lastSeenAt + idleMs) return undefined;
    const opened = openTokens(cookieValue, key, record.tok);
    if (opened === undefined) {
      log.warn({ session: key }, 'session tokens did not decrypt with the presented id');
      return undefined;
    }
    const session = toSession(key, record, JSON.parse(opened) as SessionTokens);
    if (!entry.invalidated) remember(session, raw, cookieValue, readEpoch);
    return session;
  };

  const storeFailure = (err: unknown) => new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'session store call failed' });

  const manager: SessionManager = {
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
        ...(input.accessTokenJti ? { atJti: input.accessTokenJti } : {}),
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

    async load(cookieValue, loadOptions) {
      if (cookieValue === undefined) return undefined;
      const at = now();
      const hit = loadOptions?.fresh ? undefined : cache.get(cookieValue);
      if (hit) {
        if (usable(hit, at)) return hit.session;
        forget(hit.session.key);
      }
      if (!isWellFormedId(cookieValue)) return undefined;
      if (!loadOptions?.fresh) {
        const shared = reading.get(cookieValue);
        if (shared?.promise) return shared.promise;
      }
      const key = storeKeyOf(cookieValue);
      const entry: Reading = { cookie: cookieValue, key, invalidated: false };
      const promise = read(cookieValue, key, entry);
      entry.promise = promise;
      if (!loadOptions?.fresh) reading.set(cookieValue, entry);
      const forKey = readingByKey.get(key) ?? new Set<Reading>();
      forKey.add(entry);
      readingByKey.set(key, forKey);
      try {
        return await promise;
      } finally {
        if (reading.get(cookieValue) === entry) reading.delete(cookieValue);
        forKey.delete(entry);
        if (forKey.size === 0 && readingByKey.get(key) === forKey) readingByKey.delete(key);
      }
    },

    peek(cookieValue) {
      if (cookieValue === undefined) return undefined;
      const hit = cache.get(cookieValue);
      return hit && usable(hit, now()) ? hit.session : undefined;
    },

    touch(session) {
      const at = now();
      if (at - session.lastSeenAt < touchIntervalMs) return;
      const entry = entryOf(session.key);
      if (entry?.touching) return;
      if (entry) entry.touching = true;
      void (async () => {
        const raw = entry?.raw ?? (await store.get(sessionKey(session.key)));
        if (!raw) return;
        const record = JSON.parse(raw) as SessionRecord;
        const next: SessionRecord = { ...record, lastSeenAt: at };
        const nextRaw = JSON.stringify(next);
        const ok = await store.compareAndSet(sessionKey(session.key), raw, nextRaw, ttlFor(next, at));
        const current = entryOf(session.key);
        if (ok && current === entry && entry) {
          const updated = toSession(session.key, next, session.tokens);
          entry.session = updated;
          entry.raw = nextRaw;
        } else {
          // Someone else rewrote it (refresh, another replica's touch): read it afresh next time.
          forget(session.key);
        }
      })()
        .catch((err: unknown) => log.warn({ err, session: session.key }, 'session touch failed'))
        .finally(() => {
          if (entry) entry.touching = false;
        });
    },

    async replaceTokens(id, session, tokens, accessTokenExpiresAt, accessTokenJti) {
      const storeKey = sessionKey(session.key);
      for (let attempt = 0; attempt < 3; attempt++) {
        let raw: string | null;
        try {
          raw = await store.get(storeKey);
        } catch (err) {
          throw storeFailure(err);
        }
        if (raw === null) return undefined;
        const record = JSON.parse(raw) as SessionRecord;
        const current = (): Session | undefined => {
          const opened = openTokens(id, session.key, record.tok);
          return opened === undefined ? undefined : toSession(session.key, record, JSON.parse(opened) as SessionTokens);
        };
        if (record.ver !== session.version) return current();
        const at = now();
        const next: SessionRecord = { ...record, ver: record.ver + 1, lastSeenAt: at, tok: sealTokens(id, session.key, JSON.stringify(tokens)) };
        if (accessTokenExpiresAt === undefined) delete next.accessTokenExpiresAt;
        else next.accessTokenExpiresAt = accessTokenExpiresAt;
        if (accessTokenJti === undefined) delete next.atJti;
        else next.atJti = accessTokenJti;
        const nextRaw = JSON.stringify(next);
        let ok: boolean;
        try {
          ok = await store.compareAndSet(storeKey, raw, nextRaw, ttlFor(next, at));
        } catch (err) {
          throw storeFailure(err);
        }
        if (!ok) continue;
        const updated = toSession(session.key, next, tokens);
        remember(updated, nextRaw, id);
        await store.publish(INVALIDATE_CHANNEL, `u:${session.key}`).catch((err: unknown) => log.error({ err }, 'session invalidation publish failed'));
        return updated;
      }
      return manager.load(id, { fresh: true });
    },

    async destroy(key) {
      try {
        await store.del(sessionKey(key));
      } catch (err) {
        throw storeFailure(err);
      }
      invalidateLocal(`d:${key}`);
      await store.publish(INVALIDATE_CHANNEL, `d:${key}`).catch((err: unknown) => log.error({ err }, 'session invalidation publish failed'));
    },

    async destroyUser(sub) {
      const keys = await store.setMembers(userIndexKey(sub)).catch((err: unknown) => { throw storeFailure(err); });
      for (const key of keys) await manager.destroy(key);
      await store.del(userIndexKey(sub)).catch(() => 0);
      return keys.length;
    },

    async destroyBySid(sid, sub) {
      const keys = await store.setMembers(sidIndexKey(sid)).catch((err: unknown) => { throw storeFailure(err); });
      let n = 0;
      for (const key of keys) {
        if (sub !== undefined) {
          const raw = await store.get(sessionKey(key)).catch(() => null);
          if (raw && (JSON.parse(raw) as SessionRecord).sub !== sub) continue;
        }
        await manager.destroy(key);
        n++;
      }
      return n;
    },

    onInvalidate(listener) {
      listeners.push(listener);
    },

    cacheSize: () => cache.size,
  };
  return manager;
}
