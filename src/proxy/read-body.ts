import type { IncomingMessage } from 'node:http';
import { GatehouseError } from '../errors.ts';

/**
 * Reads a request body whole, for a schema check, and never more than `limit` bytes of it: a declared
 * Content-Length over the limit is refused before a byte is read, a chunked body as soon as it passes the limit
 * (security-cases 110: 413 before the whole body is buffered). `onBody` gets the bytes, or an error (413), or
 * nothing when the client went away first (or Node's request timeout ended a stalled upload).
 */
export function readBody(
  req: IncomingMessage,
  framing: 'none' | 'chunked' | number,
  limit: number,
  onBody: (err: GatehouseError | undefined, body: Buffer | undefined) => void,
): void {
  if (framing === 'none' || framing === 0) return onBody(undefined, Buffer.alloc(0));
  const tooLarge = () => new GatehouseError('payload_too_large', { logDetail: `body over ${limit} bytes` });
  if (typeof framing === 'number' && framing > limit) return onBody(tooLarge(), undefined);
  // Gathered as it arrives and joined once: memory follows the bytes received, never a length merely declared
  // (a thousand connections each announcing 1 MiB and sending nothing must not cost a GiB).
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (err: GatehouseError | undefined, body: Buffer | undefined) => {
    if (settled) return;
    settled = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    onBody(err, body);
  };
  const onEnd = () => settle(undefined, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
  const onData = (chunk: Buffer) => {
    if (size + chunk.length > limit) return settle(tooLarge(), undefined);
    chunks.push(chunk);
    size += chunk.length;
    // Node's parser never passes on more than Content-Length: at that size the body is whole, with no need to
    // wait a tick for 'end'.
    if (size === framing) onEnd();
  };
  const onClose = () => settle(undefined, undefined);
  req.on('data', onData);
  req.once('end', onEnd);
  req.once('close', onClose);
  if (req.readableEnded) settle(undefined, Buffer.concat(chunks, size));
}

/** Every value of a header in Node's raw [name, value, ...] list (names compared case-insensitively). */
export function rawHeaderValues(raw: readonly string[], lowerName: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) values.push(raw[i + 1] as string);
  }
  return values;
}
