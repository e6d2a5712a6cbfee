import { describe, expect, it } from 'vitest';
import { createEpochCache } from '../../src/store/epoch-cache.ts';

/** A read the test answers when it chooses, to put an invalidation or a reconnect in the middle of it. */
function heldRead<V>() {
  let answer!: (v: V | undefined) => void;
  let calls = 0;
  const read = () => {
    calls++;
    return new Promise<V | undefined>((resolve) => {
      answer = resolve;
    });
  };
  return { read, answer: (v: V | undefined) => answer(v), calls: () => calls };
}

function setup(maxEntries = 10) {
  const clock = { epoch: 1, at: 1_000 };
  const cache = createEpochCache<string>({ subscriptionEpoch: () => clock.epoch, now: () => clock.at, maxAgeMs: 100, maxEntries });
  return { clock, cache };
}

describe('epoch cache', () => {
  it('serves an entry under its epoch and until maxAgeMs, not after', () => {
    const { clock, cache } = setup();
    cache.set('k', 'v');
    expect(cache.get('k')).toBe('v');
    clock.at += 99;
    expect(cache.get('k')).toBe('v');
    clock.at += 1;
    expect(cache.get('k')).toBeUndefined();
    cache.set('k', 'v');
    clock.epoch = 2;
    expect(cache.get('k')).toBeUndefined();
  });

  it('stores nothing while the subscription is down (epoch 0)', () => {
    const { clock, cache } = setup();
    clock.epoch = 0;
    cache.set('k', 'v');
    expect(cache.size).toBe(0);
  });

  it('concurrent misses share one read, whose answer is stored', async () => {
    const { cache } = setup();
    const held = heldRead<string>();
    const a = cache.load('k', held.read);
    const b = cache.load('k', held.read);
    held.answer('v');
    expect(await Promise.all([a, b])).toEqual(['v', 'v']);
    expect(held.calls()).toBe(1);
    expect(cache.get('k')).toBe('v');
  });

  it('a read under way when this process writes the key does not replace the write', async () => {
    const { cache } = setup();
    const held = heldRead<string>();
    const reading = cache.load('k', held.read);
    cache.set('k', 'written');
    held.answer('read before the write');
    await reading;
    expect(cache.get('k')).toBe('written');
  });

  it('a read overtaken by an invalidation answers its caller but is not stored, and later callers read again', async () => {
    const { cache } = setup();
    const first = heldRead<string>();
    const reading = cache.load('k', first.read);
    cache.invalidate('k');
    const second = heldRead<string>();
    const later = cache.load('k', second.read);
    expect(second.calls()).toBe(1);
    first.answer('old');
    expect(await reading).toBe('old');
    expect(cache.get('k')).toBeUndefined();
    second.answer('new');
    expect(await later).toBe('new');
    expect(cache.get('k')).toBe('new');
  });

  it('a read overtaken by a message carrying a value answers that value and keeps it', async () => {
    const { cache } = setup();
    const held = heldRead<string>();
    const reading = cache.load('k', held.read);
    cache.invalidate('k', 'from-message');
    held.answer('from-store');
    expect(await reading).toBe('from-message');
    expect(cache.get('k')).toBe('from-message');
  });

  it('a read that spans a reconnect is not stored; a read that must not join does not', async () => {
    const { clock, cache } = setup();
    const held = heldRead<string>();
    const reading = cache.load('k', held.read);
    clock.epoch = 2;
    held.answer('v');
    expect(await reading).toBe('v');
    expect(cache.size).toBe(0);

    const shared = heldRead<string>();
    const own = heldRead<string>();
    const a = cache.load('j', shared.read);
    const b = cache.load('j', own.read, { join: false });
    expect(own.calls()).toBe(1);
    shared.answer('a');
    own.answer('b');
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
  });

  it('drops the oldest entry when full', () => {
    const { cache } = setup(2);
    cache.set('a', '1');
    cache.set('b', '2');
    cache.set('c', '3');
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')).toBe('3');
  });
});
