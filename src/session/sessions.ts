import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { createEpochCache } from '../store/epoch-cache.ts';
import type { Bus, KeyValue } from '../store/store.ts';
import { detachedSecret, newSessionSecret, sealTokens, storeKeyOf, type SessionSecret } from './crypto.ts';
import { openRecordTokens, parseRecord, type SessionRecord, type SessionTokens, type UserClaims } from './record.ts';

export type { SessionTokens, UserClaims } from './record.ts';
export type { SessionSecret } from './crypto.ts';

export interface Session {
  /**
   * Hash of the session secret: the store key and the id used in logs (`session`), admin calls and
   * invalidation messages. Safe to show; it opens nothing.
   */
  readonly storeKey: string;
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

/** Where a session was opened from, as the login request showed it. */
export interface SessionClient {
  readonly ip?: string;
  readonly userAgent?: string;
}

/** A session as the admin API lists it: when and from where, never a token or the secret. */
export interface SessionSummary {
  readonly storeKey: string;
  readonly sub: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly expiresAt: number;
  readonly ip?: string;
  readonly userAgent?: string;
}

export interface NewSession {
  readonly claims: UserClaims;
  readonly client?: SessionClient;
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

/** What the cache holds for a session; `raw` is the stored text, the expected value of the next compare-and-set. */
interface CacheEntry {
  session: Session;
  raw: string;
  touching: boolean;
}

export interface SessionManager {
  /** Creates a brand-new session (fresh secret: a cookie the browser brought is never reused). */
  create(input: NewSession): Promise<{ secret: SessionSecret; session: Session }>;
  /**
   * The live session for a secret, or undefined. Throws session_store_unavailable when the store
   * fails (fail closed). `fresh` skips the process cache.
   */
  load(secret: SessionSecret | undefined, options?: { fresh?: boolean }): Promise<Session | undefined>;
  /** The cached live session for a secret, synchronously; undefined means "ask load()". */
  peek(secret: SessionSecret | undefined): Session | undefined;
  /**
   * Stores new tokens if the session is still at `session.version` (else returns what the store has now,
   * so a slow writer never overwrites a newer session). Undefined when the session is gone.
   */
  replaceTokens(
    secret: SessionSecret,
    session: Session,
    tokens: SessionTokens,
    accessTokenExpiresAt: number | undefined,
    accessTokenJti: string | undefined,
  ): Promise<Session | undefined>;
  /** Rolls the idle timeout forward, at most once per touch interval, without delaying the caller. */
  touch(session: Session): void;
  destroy(storeKey: string): Promise<void>;
  /** The live sessions of a user (index by `sub`), oldest first; reads the store, never the cache. */
  listUser(sub: string): Promise<SessionSummary[]>;
  /** Destroys every session of a user (index by `sub`); returns how many there were. */
  destroyUser(sub: string): Promise<number>;
  /** Destroys the sessions tied to an IdP session id (back-channel logout), optionally only those of `sub`. */
  destroyBySid(sid: string, sub?: string): Promise<number>;
  /** Called with the session's store key whenever any replica deletes or rewrites a session. */
  onInvalidate(listener: (storeKey: string, kind: InvalidationKind) => void): void;
  /** Number of cached sessions (metrics and tests). */
  cacheSize(): number;
  start(): Promise<void>;
}

const INVALIDATE_CHANNEL = 'session-invalidate';
const sessionKey = (key: string) => `s:${key}`;

/** The subject a stored record belongs to; undefined when it does not parse. */
function ownerOf(raw: string): string | undefined {
  try {
    return parseRecord(raw).sub;
  } catch {
    return undefined;
  }
}
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
  // Keyed by store key, as invalidation messages are. Reads under way are overtaken by an invalidation, so a
  // read that may predate a delete or rewrite never fills the cache (the in-flight-reads tests).
  const cache = createEpochCache<CacheEntry>({
    subscriptionEpoch: () => store.subscriptionEpoch(),
    now,
    maxAgeMs: cacheMaxAgeMs,
    maxEntries: cacheMaxEntries,
  });
  // The store key of each secret whose session was found, so a cache hit costs two lookups and no hash. Only
  // found sessions are remembered: forged cookies must neither grow the memo nor push real sessions out of it.
  // A pure function's memo: any entry may go at any time.
  const storeKeys = new Map<SessionSecret, string>();
  const rememberKey = (secret: SessionSecret, key: string): void => {
    if (storeKeys.size >= cacheMaxEntries) {
      const oldest = storeKeys.keys().next();
      if (!oldest.done) storeKeys.delete(oldest.value);
    }
    storeKeys.set(detachedSecret(secret), key);
  };
  const live = (entry: CacheEntry | undefined, at: number): entry is CacheEntry => entry !== undefined && at < entry.session.idleExpiresAt;
  const listeners: Array<(key: string, kind: InvalidationKind) => void> = [];

  const ttlFor = (record: SessionRecord, at: number) => Math.min(record.lastSeenAt + idleMs, record.expiresAt) - at;

  const toSession = (storeKey: string, record: SessionRecord, tokens: SessionTokens): Session => ({
    storeKey,
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

  const remember = (session: Session, raw: string) => cache.set(session.storeKey, { session, raw, touching: false });

  const invalidateLocal = (message: string) => {
    const kind: InvalidationKind = message.startsWith('u:') ? 'updated' : 'destroyed';
    const key = message.slice(2);
    cache.invalidate(key);
    for (const l of listeners) {
      try {
        l(key, kind);
      } catch (err) {
        log.error({ err }, 'session invalidation listener failed');
      }
    }
  };

  /** One store read of a session (the cache stores the answer unless an invalidation or a reconnect came in between). */
  const read = async (secret: SessionSecret, key: string): Promise<CacheEntry | undefined> => {
    let raw: string | null;
    try {
      raw = await store.get(sessionKey(key));
    } catch (err) {
      throw storeFailure(err);
    }
    if (raw === null) return undefined;
    let record: SessionRecord;
    try {
      record = parseRecord(raw);
    } catch (err) {
      log.warn({ session: key, detail: err instanceof GatehouseError ? err.logDetail : undefined }, 'unreadable session record ignored');
      return undefined;
    }
    const at = now();
    if (at >= record.expiresAt || at >= record.lastSeenAt + idleMs) return undefined;
    const tokens = openRecordTokens(secret, key, record);
    if (tokens === undefined) {
      log.warn({ session: key }, 'session tokens did not decrypt with the presented id');
      return undefined;
    }
    return { session: toSession(key, record, tokens), raw, touching: false };
  };

  const storeFailure = (err: unknown) =>
    new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'session store call failed' });

  const manager: SessionManager = {
    async start() {
      await store.subscribe(INVALIDATE_CHANNEL, invalidateLocal);
    },

    async create(input) {
      const secret = newSessionSecret();
      const key = storeKeyOf(secret);
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
        ...(input.client?.ip ? { ip: input.client.ip.slice(0, 64) } : {}),
        ...(input.client?.userAgent ? { ua: input.client.userAgent.slice(0, 256) } : {}),
        tok: sealTokens(secret, key, JSON.stringify(input.tokens)),
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
      remember(session, raw);
      rememberKey(secret, key);
      return { secret, session };
    },

    async load(secret, loadOptions) {
      // A SessionSecret is well formed by construction (parseSessionSecret, newSessionSecret).
      if (secret === undefined) return undefined;
      const known = storeKeys.get(secret);
      const key = known ?? storeKeyOf(secret);
      const fresh = loadOptions?.fresh === true;
      if (!fresh) {
        const at = now();
        const hit = cache.get(key, at);
        if (live(hit, at)) return hit.session;
        if (hit) cache.delete(key);
      }
      const session = (await cache.load(key, () => read(secret, key), { join: !fresh }))?.session;
      if (session !== undefined && known === undefined) rememberKey(secret, key);
      return session;
    },

    peek(secret) {
      if (secret === undefined) return undefined;
      const key = storeKeys.get(secret);
      if (key === undefined) return undefined;
      const at = now();
      const hit = cache.get(key, at);
      return live(hit, at) ? hit.session : undefined;
    },

    touch(session) {
      const at = now();
      if (at - session.lastSeenAt < touchIntervalMs) return;
      const entry = cache.held(session.storeKey);
      if (entry?.touching) return;
      if (entry) entry.touching = true;
      void (async () => {
        const raw = entry?.raw ?? (await store.get(sessionKey(session.storeKey)));
        if (!raw) return;
        const record = parseRecord(raw);
        const next: SessionRecord = { ...record, lastSeenAt: at };
        const nextRaw = JSON.stringify(next);
        const ok = await store.compareAndSet(sessionKey(session.storeKey), raw, nextRaw, ttlFor(next, at));
        const current = cache.held(session.storeKey);
        if (ok && current === entry && entry) {
          const updated = toSession(session.storeKey, next, session.tokens);
          entry.session = updated;
          entry.raw = nextRaw;
        } else {
          // Someone else rewrote it (refresh, another replica's touch): read it afresh next time.
          cache.delete(session.storeKey);
        }
      })()
        .catch((err: unknown) => log.warn({ err, session: session.storeKey }, 'session touch failed'))
        .finally(() => {
          if (entry) entry.touching = false;
        });
    },

    async replaceTokens(secret, session, tokens, accessTokenExpiresAt, accessTokenJti) {
      const recordKey = sessionKey(session.storeKey);
      for (let attempt = 0; attempt < 3; attempt++) {
        let raw: string | null;
        try {
          raw = await store.get(recordKey);
        } catch (err) {
          throw storeFailure(err);
        }
        if (raw === null) return undefined;
        const record = parseRecord(raw);
        const current = (): Session | undefined => {
          const tokens = openRecordTokens(secret, session.storeKey, record);
          return tokens === undefined ? undefined : toSession(session.storeKey, record, tokens);
        };
        if (record.ver !== session.version) return current();
        const at = now();
        const next: SessionRecord = {
          ...record,
          ver: record.ver + 1,
          lastSeenAt: at,
          tok: sealTokens(secret, session.storeKey, JSON.stringify(tokens)),
        };
        if (accessTokenExpiresAt === undefined) delete next.accessTokenExpiresAt;
        else next.accessTokenExpiresAt = accessTokenExpiresAt;
        if (accessTokenJti === undefined) delete next.atJti;
        else next.atJti = accessTokenJti;
        const nextRaw = JSON.stringify(next);
        let ok: boolean;
        try {
          ok = await store.compareAndSet(recordKey, raw, nextRaw, ttlFor(next, at));
        } catch (err) {
          throw storeFailure(err);
        }
        if (!ok) continue;
        const updated = toSession(session.storeKey, next, tokens);
        remember(updated, nextRaw);
        await store
          .publish(INVALIDATE_CHANNEL, `u:${session.storeKey}`)
          .catch((err: unknown) => log.error({ err }, 'session invalidation publish failed'));
        return updated;
      }
      return manager.load(secret, { fresh: true });
    },

    async destroy(key) {
      try {
        await store.del(sessionKey(key));
      } catch (err) {
        throw storeFailure(err);
      }
      invalidateLocal(`d:${key}`);
      await store
        .publish(INVALIDATE_CHANNEL, `d:${key}`)
        .catch((err: unknown) => log.error({ err }, 'session invalidation publish failed'));
    },

    async listUser(sub) {
      let found: SessionSummary[];
      try {
        const keys = await store.setMembers(userIndexKey(sub));
        const at = now();
        found = [];
        for (const key of keys) {
          const raw = await store.get(sessionKey(key));
          if (raw === null) continue;
          let record: SessionRecord;
          try {
            record = parseRecord(raw);
          } catch {
            continue;
          }
          if (record.sub !== sub || at >= record.expiresAt || at >= record.lastSeenAt + idleMs) continue;
          found.push({
            storeKey: key,
            sub: record.sub,
            createdAt: record.createdAt,
            lastSeenAt: record.lastSeenAt,
            expiresAt: Math.min(record.lastSeenAt + idleMs, record.expiresAt),
            ...(record.ip ? { ip: record.ip } : {}),
            ...(record.ua ? { userAgent: record.ua } : {}),
          });
        }
      } catch (err) {
        throw storeFailure(err);
      }
      return found.sort((a, b) => a.createdAt - b.createdAt);
    },

    async destroyUser(sub) {
      const keys = await store.setMembers(userIndexKey(sub)).catch((err: unknown) => {
        throw storeFailure(err);
      });
      for (const key of keys) await manager.destroy(key);
      await store.del(userIndexKey(sub)).catch(() => 0);
      return keys.length;
    },

    async destroyBySid(sid, sub) {
      const keys = await store.setMembers(sidIndexKey(sid)).catch((err: unknown) => {
        throw storeFailure(err);
      });
      let n = 0;
      for (const key of keys) {
        if (sub !== undefined) {
          const raw = await store.get(sessionKey(key)).catch(() => null);
          // A record that does not parse cannot be loaded either: ending it is the safe answer to a logout.
          const owner = raw === null ? undefined : ownerOf(raw);
          if (owner !== undefined && owner !== sub) continue;
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
