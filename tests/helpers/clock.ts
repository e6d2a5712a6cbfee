/**
 * Gatehouse's clock for a test: real time plus an offset the test moves forward, passed to startGatehouse
 * as `now`. Only Gatehouse reads it (session and token expiry, refresh due, revocation lists); the IdP,
 * Redis and timers keep real time, so moving it forward never makes the IdP refuse what it issued.
 */
export interface TestClock {
  readonly now: () => number;
  /** Moves Gatehouse's time forward by `ms`. */
  advance(ms: number): void;
  /** Moves Gatehouse's time forward to `at` (ms since the epoch, in Gatehouse's time); never backwards. */
  advanceTo(at: number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  const now = () => Date.now() + offset;
  return {
    now,
    advance(ms) {
      if (ms < 0) throw new Error('a test clock only moves forward');
      offset += ms;
    },
    advanceTo(at) {
      offset += Math.max(0, at - now());
    },
  };
}
