/**
 * The head of a backend's HTTP/1.x response, parsed strictly. Gatehouse reuses upstream connections, so any
 * doubt about where a response ends would let one user's response prefix the next request's answer
 * (response smuggling): every ambiguity RFC 9112 §6.3 names is refused instead of guessed.
 */

import { FIELD_VALUE, listTokens, TOKEN, trimOws } from './grammar.ts';

export type Framing = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  readonly status: number;
  /** Every header as received, names lowercased: [name, value, ...]. */
  readonly headers: string[];
  /** Lowercase names listed in the Connection header (hop-by-hop for this response). */
  readonly connectionTokens: readonly string[];
  readonly framing: Framing;
  /** Body length when framing is 'length'. */
  readonly length: number;
  /** The connection may carry another request once this response is complete. */
  readonly keepAlive: boolean;
  /** The backend's Keep-Alive timeout hint in ms, when it gave one. */
  readonly keepAliveHintMs: number | undefined;
}

export class ResponseHeadError extends Error {}

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const LENGTH = /^\d{1,15}$/;
/**
 * The one Transfer-Encoding field value accepted, as written (before OWS is trimmed): `chunked` alone. llhttp
 * reads any other value of a response, `chunked,,`, `chunked<HTAB>` and `<NBSP>chunked` included, as "not
 * chunked, read to the close" (RFC 9112 §6.3 item 4), where a laxer list parse would decode chunks.
 */
const TE_CHUNKED = /^[\t ]*chunked *$/i;
const NO_TOKENS: readonly string[] = [];

/**
 * `text` is the head as latin1, without its final CRLF CRLF. `headRequest` says the request was HEAD
 * (its response never has a body, whatever the headers say). Throws ResponseHeadError on anything not
 * strictly HTTP/1.x.
 */
export function parseResponseHead(text: string, headRequest: boolean): ResponseHead {
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  const statusMatch = STATUS_LINE.exec(text.slice(0, lineEnd));
  if (!statusMatch) throw new ResponseHeadError('malformed status line');
  const http11 = statusMatch[1] === '1';
  const status = Number(statusMatch[2]);
  const headers: string[] = [];
  let contentLength: string | undefined;
  let chunked = false;
  let connection: string[] | undefined;
  let keepAliveHintMs: number | undefined;
  let pos = lineEnd + 2;
  while (pos < text.length) {
    let end = text.indexOf('\r\n', pos);
    if (end === -1) end = text.length;
    const colon = text.indexOf(':', pos);
    if (colon === -1 || colon >= end) throw new ResponseHeadError('header line without a colon');
    const name = text.slice(pos, colon);
    // Catches obs-fold (a line starting with whitespace) and "Name : value" alike: neither is a token.
    if (!TOKEN.test(name)) throw new ResponseHeadError('invalid header name');
    const raw = text.slice(colon + 1, end);
    const value = trimOws(raw);
    // A lone CR or LF inside the head lands here: header boundaries must be exactly CRLF.
    if (!FIELD_VALUE.test(value)) throw new ResponseHeadError('invalid header value');
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length':
        // RFC 9110 §8.6 lets a recipient fold `3, 3` or a repeated line into one length; llhttp refuses both,
        // and a length that node:http would not take is one a hop behind or before Gatehouse may read otherwise.
        if (contentLength !== undefined) throw new ResponseHeadError('more than one Content-Length');
        contentLength = value;
        break;
      case 'transfer-encoding':
        if (chunked) throw new ResponseHeadError('more than one Transfer-Encoding');
        if (!TE_CHUNKED.test(raw)) throw new ResponseHeadError('unsupported Transfer-Encoding');
        chunked = true;
        break;
      case 'connection':
        connection = [...(connection ?? []), ...listTokens(value)];
        break;
      case 'keep-alive': {
        const m = /(?:^|[,;\s])timeout=(\d{1,6})/i.exec(value);
        if (m) keepAliveHintMs = Number(m[1]) * 1000;
        break;
      }
    }
    headers.push(lower, value);
    pos = end + 2;
  }

  const noBody = headRequest || status === 204 || status === 304 || status < 200;
  let framing: Framing;
  let length = 0;
  if (chunked) {
    // Both framings at once is the classic desync: refuse rather than pick one.
    if (contentLength !== undefined) throw new ResponseHeadError('both Transfer-Encoding and Content-Length');
    framing = noBody ? 'none' : 'chunked';
  } else if (contentLength !== undefined) {
    if (!LENGTH.test(contentLength)) throw new ResponseHeadError('invalid Content-Length');
    length = Number(contentLength);
    framing = noBody || length === 0 ? 'none' : 'length';
  } else {
    framing = noBody ? 'none' : 'close';
  }
  const closeAsked = connection !== undefined && connection.includes('close');
  return {
    status,
    headers,
    connectionTokens: connection ?? NO_TOKENS,
    framing,
    length,
    keepAlive: http11 && !closeAsked && framing !== 'close',
    keepAliveHintMs,
  };
}
