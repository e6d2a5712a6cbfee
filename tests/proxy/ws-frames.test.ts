import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allowedRsv,
  closeFrame,
  createFrameTracker,
  VIOLATIONS,
  type FrameTracker,
  type FrameViolation,
} from '../../src/proxy/ws-frames.ts';

interface Spec {
  opcode: number;
  length: number;
  masked?: boolean;
  fin?: boolean;
  rsv?: number;
  /** A 64-bit length field written as is (no payload follows). */
  declared?: bigint;
  /** Length encoding; default: the smallest that fits. */
  form?: 7 | 16 | 64;
}

/** One RFC 6455 frame: FIN/RSV/opcode, 7/16/64-bit length, optional mask, then the payload. */
function frame(s: Spec): Buffer {
  const form = s.declared !== undefined ? 64 : (s.form ?? (s.length < 126 ? 7 : s.length <= 0xffff ? 16 : 64));
  const ext = form === 7 ? 0 : form === 16 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (s.masked ? 4 : 0));
  head[0] = (s.fin === false ? 0 : 0x80) | (s.rsv ?? 0) | s.opcode;
  head[1] = (s.masked ? 0x80 : 0) | (form === 7 ? s.length : form === 16 ? 126 : 127);
  if (form === 16) head.writeUInt16BE(s.length, 2);
  if (form === 64) head.writeBigUInt64BE(s.declared ?? BigInt(s.length), 2);
  if (s.masked) head.set([0x12, 0x34, 0x56, 0x78], 2 + ext);
  return s.declared !== undefined ? head : Buffer.concat([head, Buffer.alloc(s.length, 0x61)]);
}

const server = (rsv = { first: 0, other: 0 }) => createFrameTracker({ from: 'server', rsvFirst: rsv.first, rsvOther: rsv.other });
const client = (rsv = { first: 0, other: 0 }) => createFrameTracker({ from: 'client', rsvFirst: rsv.first, rsvOther: rsv.other });
const trackerFor = (masked: boolean) => (masked ? client() : server());

/** Feeds `bytes` one byte at a time and records the offsets at which the tracker stood between frames (-i: byte i not consumed). */
function boundariesAfterEachByte(tracker: FrameTracker, bytes: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (tracker.advance(bytes.subarray(i, i + 1), false) !== 1) out.push(-i);
    if (tracker.atBoundary()) out.push(i + 1);
  }
  return out;
}

describe('frame tracker: boundaries', () => {
  it('starts at a boundary', () => {
    expect(server().atBoundary()).toBe(true);
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
    const a = frame({ opcode: 0x2, length: size, masked });
    const b = frame({ opcode: 0x9, length: 3, masked });
    const tracker = trackerFor(masked);
    expect(boundariesAfterEachByte(tracker, Buffer.concat([a, b]))).toEqual([a.length, a.length + b.length]);
    expect(tracker.error).toBeUndefined();
  });

  it('follows frames across arbitrary chunk splits', () => {
    const frames = [
      frame({ opcode: 0x1, length: 10 }),
      frame({ opcode: 0x2, length: 200, fin: false }),
      frame({ opcode: 0x9, length: 0 }),
      frame({ opcode: 0x0, length: 70_000, fin: false }),
      frame({ opcode: 0x0, length: 126 }),
      frame({ opcode: 0x8, length: 2 }),
    ];
    const all = Buffer.concat(frames);
    const ends = new Set<number>();
    let pos = 0;
    for (const f of frames) ends.add((pos += f.length));
    for (const split of [1, 2, 3, 7, 13, 127, 4096, all.length]) {
      const tracker = server();
      const wrong: number[] = [];
      for (let i = 0; i < all.length; i += split) {
        const at = Math.min(i + split, all.length);
        if (tracker.advance(all.subarray(i, at), false) !== at - i || tracker.atBoundary() !== ends.has(at)) wrong.push(at);
      }
      expect(wrong, `split ${split}`).toEqual([]);
      expect(tracker.error).toBeUndefined();
    }
  });

  it('keeps a header split inside its extended length and mask', () => {
    const f = frame({ opcode: 0x2, length: 0x12345, masked: true });
    const tracker = client();
    for (const cut of [
      [0, 1],
      [1, 3],
      [3, 9],
      [9, 13],
      [13, 14],
    ]) {
      tracker.advance(f.subarray(cut[0], cut[1]), false);
      expect(tracker.atBoundary()).toBe(false);
    }
    tracker.advance(f.subarray(14, f.length - 1), false);
    expect(tracker.atBoundary()).toBe(false);
    tracker.advance(f.subarray(f.length - 1), false);
    expect(tracker.atBoundary()).toBe(true);
  });

  it('counts a 64-bit length beyond 2^32 without buffering the payload', () => {
    const tracker = server();
    tracker.advance(frame({ opcode: 0x2, length: 0, declared: 1n << 32n }), false);
    const mib = Buffer.alloc(1 << 20);
    for (let i = 0; i < 8; i++) expect(tracker.advance(mib, false)).toBe(mib.length);
    expect(tracker.atBoundary()).toBe(false);
    expect(tracker.error).toBeUndefined();
  });

  it('stops at the first frame end when asked, and consumes nothing when already between frames', () => {
    const a = frame({ opcode: 0x1, length: 10 });
    const b = frame({ opcode: 0x1, length: 10 });
    const tracker = server();
    expect(tracker.advance(Buffer.concat([a, b]), true)).toBe(0);
    expect(tracker.advance(a.subarray(0, 4), false)).toBe(4);
    expect(tracker.advance(Buffer.concat([a.subarray(4), b]), true)).toBe(a.length - 4);
    expect(tracker.atBoundary()).toBe(true);
  });

  it('property: any legal frame sequence, cut anywhere, is followed to each frame end with no violation', () => {
    const control = fc.record({ opcode: fc.constantFrom(0x8, 0x9, 0xa), length: fc.integer({ min: 0, max: 125 }) });
    const message = fc.record({
      opcode: fc.constantFrom(0x1, 0x2),
      fragments: fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 3 }),
      pings: fc.array(control, { maxLength: 2 }),
    });
    const input = fc.record({
      masked: fc.boolean(),
      deflate: fc.boolean(),
      messages: fc.array(fc.oneof(message, control), { minLength: 1, maxLength: 5 }),
      cuts: fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 8 }),
    });
    fc.assert(
      fc.property(input, ({ masked, deflate, messages, cuts }) => {
        const frames: Buffer[] = [];
        for (const m of messages) {
          if (!('fragments' in m)) {
            frames.push(frame({ ...m, masked }));
            continue;
          }
          m.fragments.forEach((length, i) => {
            const last = i === m.fragments.length - 1;
            frames.push(frame({ opcode: i === 0 ? m.opcode : 0x0, length, masked, fin: last, rsv: deflate && i === 0 ? 0x40 : 0 }));
            // Control frames may come between the fragments of a message (§5.4).
            if (!last) for (const p of m.pings) frames.push(frame({ ...p, masked }));
          });
        }
        const all = Buffer.concat(frames);
        const ends = new Set<number>();
        let pos = 0;
        for (const f of frames) ends.add((pos += f.length));
        const rsv = deflate ? allowedRsv('permessage-deflate') : allowedRsv(undefined);
        const tracker = masked ? client(rsv) : server(rsv);
        let at = 0;
        for (let k = 0; at < all.length; k++) {
          const next = Math.min(all.length, at + (cuts[k % cuts.length] as number));
          expect(tracker.advance(all.subarray(at, next), false)).toBe(next - at);
          at = next;
          expect(tracker.atBoundary()).toBe(ends.has(at));
        }
        expect(tracker.error).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});

describe('frame tracker: illegal frames (RFC 6455 §5.2, §5.4, §5.5; RFC 7692 §6)', () => {
  const deflate = allowedRsv('permessage-deflate');
  // [name, side, legal frames first, illegal frame, violation, rsv]
  const rows: ReadonlyArray<[string, 'client' | 'server', Spec[], Spec, FrameViolation, { first: number; other: number }?]> = [
    ['64-bit length with the top bit set', 'server', [], { opcode: 0x2, length: 0, declared: 1n << 63n }, VIOLATIONS.lengthTopBit],
    [
      '64-bit length with the top bit set, masked',
      'client',
      [],
      { opcode: 0x2, length: 0, declared: 0xffff_ffff_ffff_ffffn, masked: true },
      VIOLATIONS.lengthTopBit,
    ],
    ['64-bit length beyond 2^53 - 1', 'server', [], { opcode: 0x2, length: 0, declared: 1n << 53n }, VIOLATIONS.tooLong],
    ['ping over 125 bytes', 'server', [], { opcode: 0x9, length: 126 }, VIOLATIONS.longControl],
    ['close with a 64-bit length', 'client', [], { opcode: 0x8, length: 10, form: 64, masked: true }, VIOLATIONS.longControl],
    ['fragmented ping', 'server', [], { opcode: 0x9, length: 1, fin: false }, VIOLATIONS.fragmentedControl],
    ['fragmented close', 'client', [], { opcode: 0x8, length: 2, fin: false, masked: true }, VIOLATIONS.fragmentedControl],
    ...[0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op): [string, 'server', Spec[], Spec, FrameViolation] => [
      `reserved opcode 0x${op.toString(16)}`,
      'server',
      [],
      { opcode: op, length: 1 },
      VIOLATIONS.reservedOpcode,
    ]),
    ['RSV1 without an extension', 'server', [], { opcode: 0x1, length: 1, rsv: 0x40 }, VIOLATIONS.rsv],
    ['RSV2 without an extension', 'client', [], { opcode: 0x2, length: 1, rsv: 0x20, masked: true }, VIOLATIONS.rsv],
    ['RSV3 without an extension', 'server', [], { opcode: 0x9, length: 1, rsv: 0x10 }, VIOLATIONS.rsv],
    ['RSV2 with permessage-deflate', 'server', [], { opcode: 0x1, length: 1, rsv: 0x20 }, VIOLATIONS.rsv, deflate],
    ['RSV1 on a ping with permessage-deflate', 'server', [], { opcode: 0x9, length: 1, rsv: 0x40 }, VIOLATIONS.rsv, deflate],
    [
      'RSV1 on a continuation with permessage-deflate',
      'client',
      [{ opcode: 0x1, length: 1, fin: false, rsv: 0x40, masked: true }],
      { opcode: 0x0, length: 1, rsv: 0x40, masked: true },
      VIOLATIONS.rsv,
      deflate,
    ],
    ['an unmasked client frame', 'client', [], { opcode: 0x1, length: 3 }, VIOLATIONS.unmasked],
    ['a masked server frame', 'server', [], { opcode: 0x1, length: 3, masked: true }, VIOLATIONS.masked],
    [
      'a continuation with no message',
      'server',
      [{ opcode: 0x1, length: 2 }],
      { opcode: 0x0, length: 1 },
      VIOLATIONS.unexpectedContinuation,
    ],
    [
      'a new message inside a fragmented one',
      'server',
      [
        { opcode: 0x2, length: 2, fin: false },
        { opcode: 0x9, length: 0 },
      ],
      { opcode: 0x1, length: 1 },
      VIOLATIONS.unfinishedMessage,
    ],
  ];

  it.each(rows)('%s (%s) is refused before any of it is relayed', (_name, side, legal, illegal, violation, rsv) => {
    const make = side === 'client' ? client : server;
    const prefix = Buffer.concat(legal.map(frame));
    const bad = frame(illegal);
    // Whole, in one chunk with the legal frames: relay up to where the illegal frame begins.
    const whole = make(rsv);
    expect(whole.advance(Buffer.concat([prefix, bad, frame({ opcode: 0x1, length: 1, masked: side === 'client' })]), false)).toBe(
      prefix.length,
    );
    expect(whole.error).toBe(violation);
    expect(whole.atBoundary()).toBe(true);
    expect(whole.advance(Buffer.from([0x81, 0x00]), false)).toBe(0);

    // Byte by byte: the header byte that reveals it is the first refused; the frame began in an earlier chunk,
    // so nothing more may be relayed and the stream is no longer at a boundary (unless it was its first byte).
    const split = make(rsv);
    split.advance(prefix, false);
    let refusedAt = -1;
    for (let i = 0; i < bad.length; i++) {
      const n = split.advance(bad.subarray(i, i + 1), false);
      if (split.error !== undefined) {
        expect(n).toBe(0);
        refusedAt = i;
        break;
      }
      expect(n).toBe(1);
    }
    expect(split.error).toBe(violation);
    expect(split.atBoundary()).toBe(refusedAt === 0);
  });

  it.each([
    ['permessage-deflate: RSV1 on first data frames only', 'permessage-deflate', { first: 0x40, other: 0 }],
    [
      'permessage-deflate with parameters',
      'permessage-deflate; client_max_window_bits=10; server_no_context_takeover',
      { first: 0x40, other: 0 },
    ],
    ['an extension Gatehouse does not know: every bit', 'x-webkit-deflate-frame', { first: 0x70, other: 0x70 }],
    ['a known and an unknown one: every bit', 'permessage-deflate, x-custom', { first: 0x70, other: 0x70 }],
    ['none', undefined, { first: 0, other: 0 }],
    ['an empty header', '  ', { first: 0, other: 0 }],
  ])('allowedRsv: %s', (_name, header, expected) => {
    expect(allowedRsv(header)).toEqual(expected);
  });

  it('with permessage-deflate, RSV1 on the first frame of a message is legal', () => {
    const tracker = server(deflate);
    const bytes = Buffer.concat([
      frame({ opcode: 0x1, length: 5, rsv: 0x40, fin: false }),
      frame({ opcode: 0x0, length: 5 }),
      frame({ opcode: 0x2, length: 3, rsv: 0x40 }),
    ]);
    expect(tracker.advance(bytes, false)).toBe(bytes.length);
    expect(tracker.error).toBeUndefined();
  });
});

describe('closeFrame', () => {
  it('is an unmasked FIN close frame with the code and reason', () => {
    const f = closeFrame(1008, 'session ended');
    expect(f[0]).toBe(0x88);
    expect(f[1]).toBe(2 + 'session ended'.length);
    expect(f.readUInt16BE(2)).toBe(1008);
    expect(f.subarray(4).toString()).toBe('session ended');
    const tracker = server();
    tracker.advance(f, false);
    expect(tracker.atBoundary()).toBe(true);
    expect(tracker.error).toBeUndefined();
  });

  it('keeps a control frame payload within 125 bytes', () => {
    const f = closeFrame(1001, 'é'.repeat(100));
    expect(f[1]).toBeLessThanOrEqual(125);
    expect(f.length).toBe(2 + (f[1] as number));
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(f.subarray(4))).not.toThrow();
  });
});
