/**
 * Incremental decoder for a chunked response body (RFC 9112 §7.1). Data is handed on as views of the
 * received buffers (no copy); chunk extensions and trailers are checked against their grammar and dropped.
 * Strict: CRLF exactly where the grammar puts it, bounded size lines and trailers, and never more lenient
 * than node:http's parser (llhttp), so a body Gatehouse decodes is one every other HTTP/1.1 hop frames the
 * same way, and a malformed one fails the response instead of desynchronising the connection it arrived on.
 */

// Decoder states (numbers: the decoder runs per byte of every size line).
const SIZE = 0;
const EXT_NAME_START = 1;
const EXT_NAME = 2;
const EXT_VALUE_START = 3;
const EXT_TOKEN = 4;
const EXT_QUOTED = 5;
const EXT_QUOTED_PAIR = 6;
const EXT_QUOTED_END = 7;
const SIZE_LF = 8;
const DATA = 9;
const DATA_CR = 10;
const DATA_LF = 11;
const TRAILER_START = 12;
const TRAILER_NAME = 13;
const TRAILER_VALUE = 14;
const TRAILER_LF = 15;
const END_LF = 16;
const DONE = 17;

const CR = 0x0d;
const LF = 0x0a;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

// Byte classes, one table lookup per byte instead of a regex or a chain of comparisons.
/** tchar (RFC 9110 §5.6.2). */
const TCHAR = 1;
/** qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR but `"` and `\`, obs-text. */
const QDTEXT = 2;
/** What may follow `\` in a quoted-pair, and what a field value is made of: HTAB, SP, VCHAR, obs-text. */
const FIELD_CHAR = 4;

const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const vchar = (c >= 0x21 && c <= 0x7e) || c >= 0x80;
  if (vchar || c === 0x09 || c === 0x20) CLASS[c] = FIELD_CHAR | (c === DQUOTE || c === BACKSLASH ? 0 : QDTEXT);
}
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  const c = ch.charCodeAt(0);
  CLASS[c] = (CLASS[c] as number) | TCHAR;
}

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 256; c++) {
  if (c >= 0x30 && c <= 0x39) HEX[c] = c - 0x30;
  else if (c >= 0x41 && c <= 0x46) HEX[c] = c - 0x37;
  else if (c >= 0x61 && c <= 0x66) HEX[c] = c - 0x57;
}

/**
 * Trailer fields that would reframe the message: framing cannot be decided after the content (RFC 9110
 * §6.5.1), so a backend sending them is confused or probing. llhttp refuses a Content-Length trailer outright.
 */
const FRAMING_TRAILERS = ['content-length', 'transfer-encoding'];

export class ChunkedError extends Error {}

/** Hex digits of a chunk size: 13 keep it under Number.MAX_SAFE_INTEGER. */
const MAX_SIZE_DIGITS = 13;
const MAX_LINE = 4096;
const MAX_TRAILERS = 16384;

export class ChunkedDecoder {
  private state: number = SIZE;
  private size = 0;
  private digits = 0;
  private lineLength = 0;
  private trailerBytes = 0;
  /** Length of the trailer name read so far, and which FRAMING_TRAILERS (bit i) it still spells. */
  private nameLength = 0;
  private nameMatches = 0;

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
          const v = HEX[c] as number;
          if (v !== -1) {
            if (++this.digits > MAX_SIZE_DIGITS) throw new ChunkedError('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits > 0 && c === CR) {
            this.state = SIZE_LF;
          } else if (this.digits > 0 && c === SEMICOLON) {
            this.state = EXT_NAME_START;
            this.lineLength = 0;
          } else {
            // Whitespace after the size included: `5 6` or `5 ` is a size to one parser and an error or
            // another size to the next, and llhttp refuses it (RFC 9112 §7.1 has no BWS before chunk-ext).
            throw new ChunkedError('invalid chunk size');
          }
          break;
        }
        // chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ), RFC 9112 §7.1.1 without its BWS:
        // llhttp refuses whitespace around `;` and `=`, and an empty name or value is no extension at all.
        case EXT_NAME_START:
          this.extByte();
          if (!((CLASS[c] as number) & TCHAR)) throw new ChunkedError('invalid chunk extension');
          this.state = EXT_NAME;
          break;
        case EXT_NAME:
          this.extByte();
          if ((CLASS[c] as number) & TCHAR) break;
          if (c === EQUALS) this.state = EXT_VALUE_START;
          else this.extEnd(c);
          break;
        case EXT_VALUE_START:
          this.extByte();
          if (c === DQUOTE) this.state = EXT_QUOTED;
          else if ((CLASS[c] as number) & TCHAR) this.state = EXT_TOKEN;
          else throw new ChunkedError('invalid chunk extension');
          break;
        case EXT_TOKEN:
          this.extByte();
          if (!((CLASS[c] as number) & TCHAR)) this.extEnd(c);
          break;
        case EXT_QUOTED:
          this.extByte();
          if ((CLASS[c] as number) & QDTEXT) break;
          if (c === DQUOTE) this.state = EXT_QUOTED_END;
          else if (c === BACKSLASH) this.state = EXT_QUOTED_PAIR;
          // CR included: a quoted string never spans lines, or `5;a="x` would swallow the data after it.
          else throw new ChunkedError('invalid quoted chunk extension');
          break;
        case EXT_QUOTED_PAIR:
          this.extByte();
          if (!((CLASS[c] as number) & FIELD_CHAR)) throw new ChunkedError('invalid quoted chunk extension');
          this.state = EXT_QUOTED;
          break;
        case EXT_QUOTED_END:
          this.extByte();
          this.extEnd(c);
          break;
        case SIZE_LF:
          if (c !== LF) throw new ChunkedError('chunk size line not ended by CRLF');
          this.digits = 0;
          this.state = this.size === 0 ? TRAILER_START : DATA;
          break;
        case DATA_CR:
          if (c !== CR) throw new ChunkedError('chunk data longer than its size');
          this.state = DATA_LF;
          break;
        case DATA_LF:
          if (c !== LF) throw new ChunkedError('chunk data not ended by CRLF');
          this.state = SIZE;
          break;
        // trailer-section = *( field-line CRLF ), field-line = field-name ":" OWS field-value OWS (RFC 9112
        // §7.1.2, §5): no line without a colon, no whitespace before it, no obs-fold (§5.2).
        case TRAILER_START:
          if (c === CR) {
            this.state = END_LF;
            break;
          }
          this.trailerByte();
          if (!((CLASS[c] as number) & TCHAR)) throw new ChunkedError('invalid trailer field name');
          this.state = TRAILER_NAME;
          this.nameLength = 0;
          this.nameMatches = (1 << FRAMING_TRAILERS.length) - 1;
          this.nameByte(c);
          break;
        case TRAILER_NAME:
          this.trailerByte();
          if ((CLASS[c] as number) & TCHAR) {
            this.nameByte(c);
          } else if (c === COLON) {
            if (this.namesFramingField()) throw new ChunkedError('framing field in the trailers');
            this.state = TRAILER_VALUE;
          } else {
            throw new ChunkedError('invalid trailer field name');
          }
          break;
        case TRAILER_VALUE:
          if (c === CR) {
            this.state = TRAILER_LF;
            break;
          }
          this.trailerByte();
          if (!((CLASS[c] as number) & FIELD_CHAR)) throw new ChunkedError('invalid trailer field value');
          break;
        case TRAILER_LF:
          if (c !== LF) throw new ChunkedError('trailer line not ended by CRLF');
          this.state = TRAILER_START;
          break;
        case END_LF:
          if (c !== LF) throw new ChunkedError('chunked body not ended by CRLF');
          this.state = DONE;
          break;
      }
    }
    return i;
  }

  private extByte(): void {
    if (++this.lineLength > MAX_LINE) throw new ChunkedError('chunk extension too long');
  }

  /** After a complete extension (name, token or quoted value): another extension, or the line's end. */
  private extEnd(c: number): void {
    if (c === SEMICOLON) this.state = EXT_NAME_START;
    else if (c === CR) this.state = SIZE_LF;
    else throw new ChunkedError('invalid chunk extension');
  }

  private trailerByte(): void {
    if (++this.trailerBytes > MAX_TRAILERS) throw new ChunkedError('trailers too large');
  }

  private nameByte(c: number): void {
    const at = this.nameLength++;
    let matches = this.nameMatches;
    for (let k = 0; matches !== 0 && k < FRAMING_TRAILERS.length; k++) {
      // `| 0x20` lowercases a letter; the only tchar it maps onto `-` is `-` itself.
      if (matches & (1 << k) && (c | 0x20) !== (FRAMING_TRAILERS[k] as string).charCodeAt(at)) matches &= ~(1 << k);
    }
    this.nameMatches = matches;
  }

  private namesFramingField(): boolean {
    for (let k = 0; k < FRAMING_TRAILERS.length; k++) {
      if (this.nameMatches & (1 << k) && (FRAMING_TRAILERS[k] as string).length === this.nameLength) return true;
    }
    return false;
  }
}
