/**
 * Tracks WebSocket frame boundaries in a byte stream without buffering or copying payloads,
 * so Gatehouse can inject its own close frame between two backend frames (never inside one).
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5.2
 */
export interface FrameTracker {
  /** Consumes bytes; with stopAtBoundary, stops at the first frame end (or at 0 when already between frames). Returns bytes consumed. */
  advance(chunk: Buffer, stopAtBoundary: boolean): number;
  atBoundary(): boolean;
}

export function createFrameTracker(): FrameTracker {
  const header = Buffer.alloc(14);
  let headerLen = 0;
  let remaining = 0;

  const headerSize = (): number => {
    if (headerLen < 2) return 2;
    const b1 = header[1] as number;
    const len7 = b1 & 0x7f;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
  };
  const payloadLength = (): number => {
    const len7 = (header[1] as number) & 0x7f;
    if (len7 === 126) return header.readUInt16BE(2);
    if (len7 === 127) return Number(header.readBigUInt64BE(2));
    return len7;
  };

  return {
    atBoundary: () => headerLen === 0 && remaining === 0,
    advance(chunk, stopAtBoundary) {
      let i = 0;
      while (i < chunk.length) {
        if (stopAtBoundary && headerLen === 0 && remaining === 0) return i;
        if (remaining > 0) {
          const take = Math.min(remaining, chunk.length - i);
          remaining -= take;
          i += take;
          continue;
        }
        header[headerLen++] = chunk[i++] as number;
        if (headerLen === headerSize() && headerLen >= 2) {
          remaining = payloadLength();
          headerLen = 0;
        }
      }
      return i;
    },
  };
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
