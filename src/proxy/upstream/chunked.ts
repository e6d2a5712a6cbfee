/**
 * Incremental decoder for a chunked response body (RFC 9112 §7.1). Data is handed on as views of the
 * received buffers (no copy); chunk extensions and trailers are read and dropped. Strict: CRLF exactly
 * where the grammar puts it, bounded size lines and trailers, so a malformed body fails the response
 * instead of desynchronising the connection it arrived on.
 */

// Decoder states (numbers: the decoder runs per byte of every size line).
const SIZE = 0;
const EXT = 1;
const SIZE_LF = 2;
const DATA = 3;
const DATA_CR = 4;
const DATA_LF = 5;
const TRAILER_START = 6;
const TRAILER = 7;
const TRAILER_LF = 8;
const END_LF = 9;
const DONE = 10;

type Exact = readonly [byte: number, next: number, problem: string];
/** States where exactly one byte may come: that byte, the state it leads to, and the error otherwise. */
const EXACT: Readonly<Record<number, Exact>> = {
  [DATA_CR]: [0x0d, DATA_LF, 'chunk data longer than its size'],
  [DATA_LF]: [0x0a, SIZE, 'chunk data not ended by CRLF'],
  [TRAILER_LF]: [0x0a, TRAILER_START, 'trailer line not ended by CRLF'],
  [END_LF]: [0x0a, DONE, 'chunked body not ended by CRLF'],
};

export class ChunkedError extends Error {}

/** Hex digits of a chunk size: 13 keep it under Number.MAX_SAFE_INTEGER. */
const MAX_SIZE_DIGITS = 13;
const MAX_LINE = 4096;
const MAX_TRAILERS = 16384;

/** A byte that may not appear inside an extension or trailer line: LF alone, controls other than HTAB, DEL. */
function isBadLineByte(c: number): boolean {
  return c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export class ChunkedDecoder {
  private state: number = SIZE;
  private size = 0;
  private digits = 0;
  private lineLength = 0;
  private trailerBytes = 0;

  get done(): boolean {
    return this.state === DONE;
  }

  /**
   * Decodes from `buf` starting at `start`, calling `onData` for each piece of body. Returns the index
   * just past what it consumed: buf.length unless the body ended inside this buffer.
   */
  push(buf: Buffer, start: number, onData: (chunk: Buffer) => void): number {
    let i = start;
    const n = buf.length;
    while (i < n && this.state !== DONE) {
      if (this.state === DATA) {
        const take = Math.min(this.size, n - i);
        const piece = buf.subarray(i, i + take);
        i += take;
        this.size -= take;
        if (this.size === 0) this.state = DATA_CR;
        onData(piece);
        continue;
      }
      const c = buf[i++] as number;
      switch (this.state) {
        case SIZE: {
          const v = hexValue(c);
          if (v !== -1) {
            if (++this.digits > MAX_SIZE_DIGITS) throw new ChunkedError('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits > 0 && (c === 0x3b || c === 0x20 || c === 0x09)) {
            this.state = EXT;
            this.lineLength = 0;
          } else if (this.digits > 0 && c === 0x0d) {
            this.state = SIZE_LF;
          } else {
            throw new ChunkedError('invalid chunk size');
          }
          break;
        }
        case EXT:
          if (c === 0x0d) this.state = SIZE_LF;
          else if (isBadLineByte(c)) throw new ChunkedError('invalid chunk extension');
          else if (++this.lineLength > MAX_LINE) throw new ChunkedError('chunk extension too long');
          break;
        case SIZE_LF:
          if (c !== 0x0a) throw new ChunkedError('chunk size line not ended by CRLF');
          this.digits = 0;
          this.state = this.size === 0 ? TRAILER_START : DATA;
          break;
        case TRAILER_START:
        case TRAILER:
          if (c === 0x0d) this.state = this.state === TRAILER_START ? END_LF : TRAILER_LF;
          else if (isBadLineByte(c)) throw new ChunkedError('invalid trailer');
          else if (++this.trailerBytes > MAX_TRAILERS) throw new ChunkedError('trailers too large');
          else this.state = TRAILER;
          break;
        default: {
          const [byte, next, problem] = EXACT[this.state] as Exact;
          if (c !== byte) throw new ChunkedError(problem);
          this.state = next;
        }
      }
    }
    return i;
  }
}
