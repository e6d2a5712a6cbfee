/**
 * WebSocket framing as far as a relay needs it: where each frame ends, and whether its header is legal.
 * Only headers are read (at most 14 bytes, kept in numbers, never buffered); payloads are skipped by count.
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.2
 */

/** Why a frame was refused, and the close code that says so. */
export interface FrameViolation {
  readonly code: number;
  readonly reason: string;
}

const violation = (code: number, reason: string): FrameViolation => Object.freeze({ code, reason });

/** One constant per rule, so a refused frame costs no allocation and tests can compare by identity. */
export const VIOLATIONS = Object.freeze({
  reservedOpcode: violation(1002, 'reserved opcode'),
  rsv: violation(1002, 'RSV bit without a negotiated extension'),
  fragmentedControl: violation(1002, 'fragmented control frame'),
  longControl: violation(1002, 'control frame over 125 bytes'),
  unmasked: violation(1002, 'unmasked client frame'),
  masked: violation(1002, 'masked server frame'),
  lengthTopBit: violation(1002, '64-bit length with the top bit set'),
  unexpectedContinuation: violation(1002, 'continuation frame without a message'),
  unfinishedMessage: violation(1002, 'new message inside a fragmented one'),
  tooLong: violation(1009, 'frame length beyond 2^53 - 1'),
});

const RSV1 = 0x40;
const ALL_RSV = 0x70;

/**
 * The RSV bits a negotiated `Sec-WebSocket-Extensions` (the value in the server's 101) makes legal on the first
 * frame of a data message, and on the other frames (continuations and control frames).
 * permessage-deflate defines RSV1 on first data frames only (RFC 7692 §6, §6.1); an extension Gatehouse does
 * not know may define any bit on any frame, so all are allowed rather than breaking it.
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.2 (RSV1-3 "MUST be 0 unless an extension is negotiated")
 */
export function allowedRsv(extensions: string | undefined): { readonly first: number; readonly other: number } {
  if (extensions === undefined || extensions.trim() === '') return { first: 0, other: 0 };
  const names = extensions.split(',').map((e) => (e.split(';', 1)[0] as string).trim().toLowerCase());
  if (names.every((n) => n === 'permessage-deflate')) return { first: RSV1, other: 0 };
  return { first: ALL_RSV, other: ALL_RSV };
}

export interface FrameTrackerOptions {
  /**
   * Which peer sends these frames: a client's frames must be masked, a server's must not.
   * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.1
   */
  readonly from: 'client' | 'server';
  /** RSV bits allowed on the first frame of a data message (see allowedRsv). Default none. */
  readonly rsvFirst?: number;
  /** RSV bits allowed on continuation and control frames. Default none. */
  readonly rsvOther?: number;
}

/**
 * Follows one direction of a WebSocket byte stream frame by frame, without copying or buffering payloads, so a
 * relay knows where it may inject its own close frame (only between two frames) and can refuse illegal frames
 * before relaying them.
 */
export class FrameTracker {
  /** Set once an illegal frame header was seen; advance() then consumes nothing. */
  error: FrameViolation | undefined;
  /** Payload bytes left in the current frame. */
  private remaining = 0;
  /** Header bytes read so far of the frame being parsed (0: between frames, or inside a payload). */
  private read = 0;
  /** Header size once the second byte is known. */
  private size = 2;
  private first = 0;
  private length = 0;
  /** Inside a fragmented data message (its first frame had FIN=0, its last has not come yet). */
  private fragmented = false;
  private readonly mask: number;
  private readonly rsvFirst: number;
  private readonly rsvOther: number;

  constructor(options: FrameTrackerOptions) {
    this.mask = options.from === 'client' ? 0x80 : 0;
    this.rsvFirst = options.rsvFirst ?? 0;
    this.rsvOther = options.rsvOther ?? 0;
  }

  /** Between two frames (nothing of a next frame seen yet). */
  atBoundary(): boolean {
    return this.read === 0 && this.remaining === 0;
  }

  /**
   * Consumes bytes; with stopAtBoundary, stops at the first frame end (or at 0 when already between frames).
   * Returns how many bytes may be relayed. On an illegal header it sets `error` and returns where that frame
   * began in `chunk` (atBoundary() is then true), or 0 when it began in an earlier chunk (atBoundary() false:
   * part of it was already relayed, so nothing can follow cleanly).
   */
  advance(chunk: Buffer, stopAtBoundary: boolean): number {
    if (this.error !== undefined) return 0;
    const n = chunk.length;
    let start = this.read === 0 ? 0 : -1;
    let i = 0;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      if (this.read === 0) {
        if (stopAtBoundary) return i;
        start = i;
      }
      const refused = this.header(chunk[i] as number);
      if (refused !== undefined) {
        this.error = refused;
        if (start < 0) return 0;
        this.read = 0;
        return start;
      }
      i++;
    }
    return i;
  }

  /** One header byte; returns the violation it reveals, if any. */
  private header(byte: number): FrameViolation | undefined {
    const at = this.read++;
    if (at === 0) {
      this.first = byte;
      this.size = 2;
      this.length = 0;
      return this.opening(byte);
    }
    if (at === 1) {
      if ((byte & 0x80) !== this.mask) return this.mask ? VIOLATIONS.unmasked : VIOLATIONS.masked;
      const len7 = byte & 0x7f;
      // §5.5: control frames carry at most 125 bytes, so never an extended length.
      if (this.first & 0x08 && len7 > 125) return VIOLATIONS.longControl;
      this.size = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.mask ? 4 : 0);
      this.length = len7 < 126 ? len7 : 0;
    } else if (at < this.size - (this.mask ? 4 : 0)) {
      // §5.2: "the most significant bit MUST be 0": a relay that took it as a length would wait forever.
      if (at === 2 && this.size - (this.mask ? 4 : 0) === 10 && byte & 0x80) return VIOLATIONS.lengthTopBit;
      this.length = this.length * 256 + byte;
      // Past 2^53 a count in a double stops being exact (ws refuses these with 1009 too).
      if (at === 9 && this.length > Number.MAX_SAFE_INTEGER) return VIOLATIONS.tooLong;
    }
    if (this.read === this.size) {
      this.read = 0;
      this.remaining = this.length;
    }
    return undefined;
  }

  /** Rules the first header byte alone decides (§5.2 opcodes and RSV, §5.4 fragmentation, §5.5 control frames). */
  private opening(byte: number): FrameViolation | undefined {
    const fin = (byte & 0x80) !== 0;
    const rsv = byte & 0x70;
    const opcode = byte & 0x0f;
    if (opcode & 0x08) {
      if (opcode > 0xa) return VIOLATIONS.reservedOpcode;
      if (rsv & ~this.rsvOther) return VIOLATIONS.rsv;
      return fin ? undefined : VIOLATIONS.fragmentedControl;
    }
    if (opcode > 0x2) return VIOLATIONS.reservedOpcode;
    if (opcode === 0x0) {
      if (!this.fragmented) return VIOLATIONS.unexpectedContinuation;
      if (rsv & ~this.rsvOther) return VIOLATIONS.rsv;
    } else {
      if (this.fragmented) return VIOLATIONS.unfinishedMessage;
      if (rsv & ~this.rsvFirst) return VIOLATIONS.rsv;
    }
    this.fragmented = !fin;
    return undefined;
  }
}

export function createFrameTracker(options: FrameTrackerOptions): FrameTracker {
  return new FrameTracker(options);
}

/**
 * An unmasked close frame (server to client) with a status code and a short reason.
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.5 (control payloads ≤ 125 bytes; the reason must stay valid UTF-8)
 */
export function closeFrame(code: number, reason: string): Buffer {
  let text = Buffer.from(reason);
  if (text.length > 123) {
    let end = 123;
    while (end > 0 && ((text[end] as number) & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const out = Buffer.alloc(4 + text.length);
  out[0] = 0x88;
  out[1] = 2 + text.length;
  out.writeUInt16BE(code, 2);
  text.copy(out, 4);
  return out;
}
