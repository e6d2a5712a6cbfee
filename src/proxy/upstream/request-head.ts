import type { Readable } from 'node:stream';
import { FIELD_VALUE, TOKEN } from './grammar.ts';

/**
 * The request head Gatehouse writes to a backend, built and checked here and nowhere else. The writer owns
 * the message's framing: it writes `Host`, `Content-Length` / `Transfer-Encoding` and, for upgrades,
 * `Connection` / `Upgrade` itself from what the request says its body is, and it refuses a header list that
 * tries to say any of those. Every byte of the method, the target and each field is checked, so no caller
 * (however its own checks fail) can end a header line early or start a second request on a kept-alive
 * connection (RFC 9112 §11.2, request smuggling).
 */

/**
 * What the body is: the writer derives the framing headers from this, never from the header list.
 * `length` comes from the client's Content-Length as Node parsed it; the writer never sends more than that
 * many bytes, and closes the connection when the stream ends short of it.
 */
export type RequestBody =
  | { readonly kind: 'none' }
  /** A body held whole (one a schema checked): sent with Content-Length, written with the head. */
  | { readonly kind: 'buffer'; readonly data: Buffer }
  | { readonly kind: 'length'; readonly length: number; readonly stream: Readable | null }
  | { readonly kind: 'chunked'; readonly stream: Readable };

export const NO_BODY: RequestBody = Object.freeze({ kind: 'none' });

export class RequestHeadError extends Error {}

// origin-form (RFC 9112 §3.2.1): no SP, no CTL, nothing above a byte.
const TARGET = /^\/[\x21-\x7e\x80-\xff]*$/;
const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

/**
 * True for the names only the writer may write. Compared by length and first letter before any lowercasing: this
 * runs for every header of every request, and most names are not these.
 */
function isWriterOwned(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20;
  switch (name.length) {
    case 4:
      return first === 0x68 /* h */ && name.toLowerCase() === 'host';
    case 7:
      return first === 0x75 /* u */ && name.toLowerCase() === 'upgrade';
    case 10:
      return first === 0x63 /* c */ && name.toLowerCase() === 'connection';
    case 14:
      return first === 0x63 /* c */ && name.toLowerCase() === 'content-length';
    case 17:
      return first === 0x74 /* t */ && name.toLowerCase() === 'transfer-encoding';
    default:
      return false;
  }
}

/**
 * The head, CRLF CRLF included, ready to write as latin1. `headers` is [name, value, ...]. `upgrade` names
 * the protocol of an upgrade request (RFC 9110 §7.8). Throws RequestHeadError, before anything is written,
 * on any byte that is not allowed where it stands.
 */
export function serializeRequestHead(
  method: string,
  target: string,
  hostHeader: string,
  headers: readonly string[],
  body: RequestBody,
  upgrade?: string,
): string {
  if (!TOKEN.test(method)) throw new RequestHeadError('invalid method');
  if (!TARGET.test(target)) throw new RequestHeadError('invalid request target');
  if (!FIELD_VALUE.test(hostHeader) || hostHeader.length === 0) throw new RequestHeadError('invalid host');
  if (headers.length % 2 !== 0) throw new RequestHeadError('header list of odd length');
  let head = `${method} ${target} HTTP/1.1\r\nhost: ${hostHeader}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    if (!TOKEN.test(name)) throw new RequestHeadError('invalid header name');
    if (isWriterOwned(name))
      throw new RequestHeadError(`${name.toLowerCase()} is written by the upstream client, not taken from the header list`);
    if (!FIELD_VALUE.test(value)) throw new RequestHeadError(`invalid value for ${name}`);
    head += `${name}: ${value}\r\n`;
  }
  switch (body.kind) {
    case 'none':
      break;
    case 'length':
      if (!Number.isSafeInteger(body.length) || body.length < 0 || body.length > MAX_LENGTH)
        throw new RequestHeadError('invalid body length');
      if (body.length > 0 && body.stream === null) throw new RequestHeadError('a body length without a body');
      head += `content-length: ${body.length}\r\n`;
      break;
    case 'chunked':
      head += 'transfer-encoding: chunked\r\n';
      break;
    case 'buffer':
      head += `content-length: ${body.data.length}\r\n`;
      break;
  }
  if (upgrade !== undefined) {
    if (!TOKEN.test(upgrade)) throw new RequestHeadError('invalid upgrade protocol');
    if (body.kind !== 'none') throw new RequestHeadError('an upgrade request has no body');
    head += `connection: upgrade\r\nupgrade: ${upgrade}\r\n`;
  }
  return `${head}\r\n`;
}
