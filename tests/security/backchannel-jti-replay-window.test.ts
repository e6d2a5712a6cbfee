import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { createBackchannelLogout } from '../../src/auth/backchannel.ts';
import { GatehouseError } from '../../src/errors.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSessionManager, type SessionManager } from '../../src/session/sessions.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import type { Store } from '../../src/store/store.ts';
import { makeSigningKey, signJwt, type SigningKey } from '../helpers/token-kit.ts';

const ISSUER = 'https://idp.example.test';
const CLIENT_ID = 'gatehouse';
const EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * BCL-OK (39), the replay half: a logout token's jti is single-use for as long as the token itself would still
 * verify. Gatehouse accepts logout tokens up to 10 minutes old with 60 s of clock tolerance, and an iat up to
 * the tolerance in the future; a jti record that expires before that lets a captured token be replayed, and the
 * replay ends the sessions the user opened since. The clock is injected (store and verifier alike).
 */
describe('back-channel logout token replay across the acceptance window', () => {
  let clock: number;
  const now = () => clock;
  let store: Store;
  let sessions: SessionManager;
  let key: SigningKey;
  let handle: (token: unknown) => Promise<number>;

  beforeEach(async () => {
    clock = Date.UTC(2030, 0, 1);
    store = createMemoryStore({ now });
    const log = createLogger({ level: 'silent' });
    sessions = createSessionManager({ store, log, idleTtlSeconds: 86_400, maxAgeSeconds: 86_400 * 7, now });
    await sessions.start();
    key = await makeSigningKey('RS256');
    const jwks = createLocalJWKSet({ keys: [key.publicJwk] } as JSONWebKeySet);
    handle = createBackchannelLogout({
      keys: () => jwks,
      issuer: ISSUER,
      clientId: CLIENT_ID,
      algorithm: 'RS256',
      sessions,
      store,
      log,
      now,
    });
  });
  afterEach(async () => {
    await store.close();
  });

  const newSession = (sid: string) => sessions.create({ claims: { sub: 'zoe' }, sid, tokens: { accessToken: 'at' } });
  const logoutToken = (iatSeconds: number, sid: string) =>
    signJwt(key, { iss: ISSUER, aud: CLIENT_ID, iat: iatSeconds, jti: randomUUID(), sub: 'zoe', sid, events: { [EVENT]: {} } });
  const rejected = async (token: string) => {
    const err = await handle(token).then(
      () => undefined,
      (e: unknown) => e,
    );
    return err instanceof GatehouseError && err.code === 'invalid_logout_token';
  };

  it.each([
    ['issued now, replayed 10.5 minutes later', 0, 10.5 * 60],
    ['issued now, replayed 10 min 55 s later', 0, 655],
    ['iat 50 s in the future, replayed 11.5 minutes later', 50, 11.5 * 60],
  ])('%s: refused, and the session opened since survives', async (_name, iatOffsetSeconds, replayAfterSeconds) => {
    const sid = `sid-${randomUUID()}`;
    const first = await newSession(sid);
    const token = await logoutToken(Math.floor(clock / 1000) + iatOffsetSeconds, sid);
    expect(await handle(token)).toBe(1);
    expect(await sessions.load(first.secret)).toBeUndefined();

    clock += replayAfterSeconds * 1000;
    const second = await newSession(sid);
    expect(await rejected(token)).toBe(true);
    expect(await sessions.load(second.secret)).toBeDefined();
  });

  it('a token older than the window is refused on first use too (the window is bounded)', async () => {
    const sid = `sid-${randomUUID()}`;
    const s = await newSession(sid);
    const token = await logoutToken(Math.floor(clock / 1000) - 12 * 60, sid);
    expect(await rejected(token)).toBe(true);
    expect(await sessions.load(s.secret)).toBeDefined();
  });
});
