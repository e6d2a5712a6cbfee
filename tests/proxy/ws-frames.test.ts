import { describe, expect, it } from 'vitest';
import { closeFrame, createFrameTracker } from '../../src/proxy/ws-frames.ts';

/** One RFC 6455 frame: FIN + opcode, 7/16/64-bit length as the size needs, optional mask. */
function frame(opcode: number, payloadLength: number, masked = false, fill = 0x61): Buffer {
  const len = payloadLength < 126 ? 0 : payloadLength <= 0xffff ? 2 : 8;
  const head = Buffer.alloc(2 + len + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | (len === 0 ? payloadLength : len === 2 ? 126 : 127);
  if (len === 2) head.writeUInt16BE(payloadLength, 2);
  if (len === 8) head.writeBigUInt64BE(BigInt(payloadLength), 2);
  if (masked) head.set([0x12, 0x34, 0x56, 0x78], 2 + len);
  return Buffer.concat([head, Buffer.alloc(payloadLength, fill)]);
}

/** Feeds `bytes` in pieces of `size` and records where the tracker stood between frames. */
function boundariesAfterEachByte(bytes: Buffer): number[] {
  const tracker = createFrameTracker();
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    expect(tracker.advance(bytes.subarray(i, i + 1), false)).toBe(1);
    if (tracker.atBoundary()) out.push(i + 1);
  }
  return out;
}

describe('frame tracker', () => {
  it('starts at a boundary', () => {
    expect(createFrameTracker().atBoundary()).toBe(true);
  });

  it.each([
    ['7-bit length', 5, false],
    ['7-bit length, masked', 125, true],
    ['16-bit length', 126, false],
    ['16-bit length, masked', 300, true],
    ['16-bit length at its maximum', 0xffff, false],
    ['64-bit length', 0x10000, false],
    ['64-bit length, masked', 70_000, true],
    ['empty payload', 0, false],
    ['empty payload, masked', 0, true],
  ])('finds the end of a frame with %s across every 1-byte split', (_name, size, masked) => {
    const a = frame(0x2, size, masked);
    const b = frame(0x9, 3, masked);
    expect(boundariesAfterEachByte(Buffer.concat([a, b]))).toEqual([a.length, a.length + b.length]);
  });

  it('follows frames across arbitrary chunk splits', () => {
    const frames = [frame(0x1, 10), frame(0x2, 200, true), frame(0x2, 70_000), frame(0x9, 0), frame(0x8, 2, true), frame(0x0, 126)];
    const all = Buffer.concat(frames);
    const ends = new Set<number>();
    let pos = 0;
    for (const f of frames) ends.add((pos += f.length));
    for (const split of [1, 2, 3, 7, 13, 127, 4096, all.length]) {
      const tracker = createFrameTracker();
      for (let i = 0; i < all.length; i += split) {
        tracker.advance(all.subarray(i, i + split), false);
        const at = Math.min(i + split, all.length);
        expect(tracker.atBoundary(), `split ${split} at ${at}`).toBe(ends.has(at));
      }
    }
  });

  it('keeps a header split inside its extended length and mask', () => {
    const f = frame(0x2, 0x12345, true);
    const tracker = createFrameTracker();
    for (const cut of [[0, 1], [1, 3], [3, 9], [9, 13], [13, 14]]) {
      tracker.advance(f.subarray(cut[0], cut[1]), false);
      expect(tracker.atBoundary()).toBe(false);
    }
    tracker.advance(f.subarray(14, f.length - 1), false);
    expect(tracker.atBoundary()).toBe(false);
    tracker.advance(f.subarray(f.length - 1), false);
    expect(tracker.atBoundary()).toBe(true);
  });

  it('counts a 64-bit length beyond 2^32 without buffering the payload', () => {
    const head = Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
    const tracker = createFrameTracker();
    tracker.advance(head, false);
    const mib = Buffer.alloc(1 << 20);
    for (let i = 0; i < 8; i++) tracker.advance(mib, false);
    expect(tracker.atBoundary()).toBe(false);
  });

  it('stops at the first frame end when asked, and consumes nothing when already between frames', () => {
    const a = frame(0x1, 10);
    const b = frame(0x1, 10);
    const tracker = createFrameTracker();
    expect(tracker.advance(Buffer.concat([a, b]), true)).toBe(0);
    expect(tracker.advance(a.subarray(0, 4), false)).toBe(4);
    expect(tracker.advance(Buffer.concat([a.subarray(4), b]), true)).toBe(a.length - 4);
    expect(tracker.atBoundary()).toBe(true);
  });
});

describe('closeFrame', () => {
  it('is an unmasked FIN close frame with the code and reason', () => {
    const f = closeFrame(1008, 'session ended');
    expect(f[0]).toBe(0x88);
    expect(f[1]).toBe(2 + 'session ended'.length);
    expect(f.readUInt16BE(2)).toBe(1008);
    expect(f.subarray(4).toString()).toBe('session ended');
    const tracker = createFrameTracker();
    tracker.advance(f, false);
    expect(tracker.atBoundary()).toBe(true);
  });

  it('keeps a control frame payload within 125 bytes', () => {
    const f = closeFrame(1001, 'é'.repeat(100));
    expect(f[1]).toBeLessThanOrEqual(125);
    expect(f.length).toBe(2 + (f[1] as number));
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(f.subarray(4))).not.toThrow();
  });
});
