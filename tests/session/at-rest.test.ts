import { createHash, randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { openTokens, parseSessionSecret, type SessionSecret } from '../../src/session/crypto.ts';
import { Browser } from '../helpers/browser.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useStage } from '../helpers/stage.ts';

const SESSION = '__Host-gh_session';
const asSecret = (value: string): SessionSecret => {
  const secret = parseSessionSecret(value);
  if (secret === undefined) throw new Error('not a session secret');
  return secret;
};
const IDLE_SECONDS = 900;
const MAX_AGE_SECONDS = 3600;

interface Tokens {
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
}

describe('what a read of Redis yields (sessions at rest)', () => {
  const stage = useStage({
    gatehouse: { env: { SESSION_IDLE_TTL_SECONDS: String(IDLE_SECONDS), SESSION_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS) } },
  });
  let cookie: string;
  let prefix: string;
  let sessionKey: string;
  let storeKey: string;
  let raw: string;
  let tokens: Tokens;

  beforeAll(async () => {
    prefix = stage.gh.config.redis.keyPrefix;

    const browser = new Browser();
    await browser.login(stage.gh.url, 'alice');
    cookie = browser.cookie(stage.gh.url, SESSION) ?? '';
    storeKey = createHash('sha256').update(cookie).digest('base64url');
    sessionKey = `${prefix}s:${storeKey}`;
    raw = (await stage.redis.get(sessionKey)) ?? '';
    const record = JSON.parse(raw) as { tok: string };
    tokens = JSON.parse(openTokens(asSecret(cookie), storeKey, record.tok) ?? 'null') as Tokens;
  });

  it('stores the session under the hash of the cookie, and no key or value holds the cookie itself', async () => {
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(raw).not.toBe('');
    const keys = await stage.redis.keys(`${prefix}*`);
    expect(keys).toContain(sessionKey);
    for (const key of keys) {
      expect(key).not.toContain(cookie);
      const type = await stage.redis.type(key);
      const values = type === 'set' ? await stage.redis.smembers(key) : type === 'string' ? [(await stage.redis.get(key)) ?? ''] : [];
      for (const value of values) expect(value).not.toContain(cookie);
    }
    expect(await stage.redis.smembers(`${prefix}su:alice`)).toContain(storeKey);
    expect(keys.filter((k) => k.startsWith(`${prefix}tx:`))).toEqual([]);
  });

  it('holds the tokens only sealed: no access, refresh or ID token text and no JWT in the record', () => {
    // The seal opens with the right id, so the tokens are really in there, just not readable.
    expect(tokens.accessToken.length).toBeGreaterThan(10);
    expect(tokens.refreshToken?.length ?? 0).toBeGreaterThan(10);
    expect(tokens.idToken).toMatch(/^eyJ/);
    expect(raw).not.toContain(tokens.accessToken);
    expect(raw).not.toContain(tokens.refreshToken);
    expect(raw).not.toContain(tokens.idToken);
    expect(raw).not.toContain('eyJ');
  });

  it('the sealed tokens do not open with another id, nor under another key', () => {
    const record = JSON.parse(raw) as { tok: string };
    const otherId = randomBytes(32).toString('base64url');
    expect(openTokens(asSecret(otherId), storeKey, record.tok)).toBeUndefined();
    expect(openTokens(asSecret(otherId), createHash('sha256').update(otherId).digest('base64url'), record.tok)).toBeUndefined();
    const otherKey = createHash('sha256').update(otherId).digest('base64url');
    expect(openTokens(asSecret(cookie), otherKey, record.tok)).toBeUndefined();
  });

  it("a record copied under another id's key is refused: the tokens are bound to the id that created them", async () => {
    const attackerId = randomBytes(32).toString('base64url');
    const attackerKey = `${prefix}s:${createHash('sha256').update(attackerId).digest('base64url')}`;
    await stage.redis.set(attackerKey, raw, 'PX', 60_000);
    try {
      const res = await fetch(`${stage.gh.url}/auth/me`, { headers: { cookie: `${SESSION}=${attackerId}` } });
      await expectError(res, 401, 'unauthorized');
    } finally {
      await stage.redis.del(attackerKey);
    }
  });

  it('gives every key a TTL: the session at most the idle timeout, its index at most the absolute lifetime', async () => {
    const ttl = await stage.redis.pttl(sessionKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(IDLE_SECONDS * 1000);
    for (const key of await stage.redis.keys(`${prefix}*`)) {
      const keyTtl = await stage.redis.pttl(key);
      expect(keyTtl, key).toBeGreaterThan(0);
      expect(keyTtl, key).toBeLessThanOrEqual(MAX_AGE_SECONDS * 1000);
    }
  });
});
