import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { createSessionManager, sidIndexKey } from '../../src/session/sessions.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import type { Store } from '../../src/store/store.ts';

const forged = () => parseSessionSecret(randomBytes(32).toString('base64url'));

describe('session manager: what unknown cookies cannot do', () => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
  });

  const manager = async (cacheMaxEntries: number) => {
    store = createMemoryStore();
    const sessions = createSessionManager({
      store,
      log: createLogger({ level: 'silent' }),
      idleTtlSeconds: 600,
      maxAgeSeconds: 3600,
      cacheMaxEntries,
    });
    await sessions.start();
    return sessions;
  };

  it('forged cookies past the cache size do not push a live session out of the synchronous path', async () => {
    const sessions = await manager(8);
    const { secret } = await sessions.create({ claims: { sub: 'alice' }, tokens: { accessToken: 'at' } });
    expect(sessions.peek(secret)?.sub).toBe('alice');
    for (let i = 0; i < 100; i++) expect(await sessions.load(forged())).toBeUndefined();
    expect(sessions.peek(secret)?.sub).toBe('alice');
  });

  it('a back-channel logout ends every session of the IdP session, an unreadable record included', async () => {
    const sessions = await manager(100);
    const a = await sessions.create({ claims: { sub: 'alice' }, sid: 'idp-1', tokens: { accessToken: 'a' } });
    const b = await sessions.create({ claims: { sub: 'alice' }, sid: 'idp-1', tokens: { accessToken: 'b' } });
    const c = await sessions.create({ claims: { sub: 'bob' }, sid: 'idp-1', tokens: { accessToken: 'c' } });
    // A record another version wrote (or a damaged one): valid JSON the parser refuses.
    await store?.set(`s:${a.session.storeKey}`, JSON.stringify({ v: 2 }), 60_000);
    expect((await store?.setMembers(sidIndexKey('idp-1')))?.length).toBe(3);
    expect(await sessions.destroyBySid('idp-1', 'alice')).toBe(2);
    expect(await store?.get(`s:${a.session.storeKey}`)).toBeNull();
    expect(await sessions.load(b.secret, { fresh: true })).toBeUndefined();
    expect((await sessions.load(c.secret, { fresh: true }))?.sub).toBe('bob');
  });
});
