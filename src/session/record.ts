import { GatehouseError } from '../errors.ts';
import { openTokens, type SessionSecret } from './crypto.ts';

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
export interface SessionRecord {
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
  /** The client address and User-Agent at login, for the admin session list (what a person recognises: "my laptop"). */
  ip?: string;
  ua?: string;
  tok: string;
}

const unreadable = (why: string) => new GatehouseError('internal_error', { logDetail: `unreadable session record: ${why}` });

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const TIMES = ['createdAt', 'lastSeenAt', 'expiresAt'] as const;

/**
 * The one reading of a stored session record: what the store holds is data from outside this process
 * (another version, another writer, a hand edit), so every field is checked before it is trusted.
 * Throws internal_error naming the first field that is wrong; callers decide what an unreadable record means.
 */
export function parseRecord(raw: string): SessionRecord {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new GatehouseError('internal_error', { cause: err, logDetail: 'unreadable session record: not JSON' });
  }
  if (!isObject(value)) throw unreadable('not an object');
  const { v, ver, sub, sid, claims, accessTokenExpiresAt, atJti, ip, ua, tok } = value;
  if (v !== 1) throw unreadable('version');
  if (typeof ver !== 'number') throw unreadable('ver');
  if (typeof sub !== 'string') throw unreadable('sub');
  if (sid !== undefined && typeof sid !== 'string') throw unreadable('sid');
  if (!isObject(claims) || typeof claims['sub'] !== 'string') throw unreadable('claims');
  for (const name of TIMES) if (typeof value[name] !== 'number') throw unreadable(name);
  if (accessTokenExpiresAt !== undefined && typeof accessTokenExpiresAt !== 'number') throw unreadable('accessTokenExpiresAt');
  if (atJti !== undefined && typeof atJti !== 'string') throw unreadable('atJti');
  if (ip !== undefined && typeof ip !== 'string') throw unreadable('ip');
  if (ua !== undefined && typeof ua !== 'string') throw unreadable('ua');
  if (typeof tok !== 'string') throw unreadable('tok');
  // The parsed object itself, not a copy: a rewrite (touch, refresh) keeps any field a newer version added.
  return value as unknown as SessionRecord;
}

/**
 * The tokens sealed in a record, opened with the session's secret. Undefined when they do not open (tampered,
 * moved to another key, another secret) or what opens is not a token set.
 */
export function openRecordTokens(secret: SessionSecret, storeKey: string, record: SessionRecord): SessionTokens | undefined {
  const opened = openTokens(secret, storeKey, record.tok);
  if (opened === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(opened);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value['accessToken'] !== 'string') return undefined;
  const { accessToken, refreshToken, idToken } = value;
  if ((refreshToken !== undefined && typeof refreshToken !== 'string') || (idToken !== undefined && typeof idToken !== 'string'))
    return undefined;
  return {
    accessToken,
    ...(typeof refreshToken === 'string' ? { refreshToken } : {}),
    ...(typeof idToken === 'string' ? { idToken } : {}),
  };
}
