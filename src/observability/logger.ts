import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino censors: tokens, cookies, secrets and credentials never reach a log line. Exact paths only:
 * wildcard paths made redaction cost about 35 µs per line on the hot path (docs/performance.md), and
 * Gatehouse never logs header objects or token responses, so these are the shapes that could occur.
 */
const REDACT = [
  'authorization',
  'cookie',
  'password',
  'secret',
  'sessionSecret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'client_secret',
  'code_verifier',
  'adminToken',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-admin-token"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'gatehouse' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: isoTimePerMillisecond(),
      // Labels, not numbers: operators grep for "level":"warn" (the access line writes the same by hand).
      formatters: { level: levelLabel },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? batchedStdout(),
  );
}

function levelLabel(label: string): { level: string } {
  return { level: label };
}

/**
 * pino's isoTime builds a Date and its ISO string for every line (about 2 µs, a third of an access line);
 * under load many lines share a millisecond, so they share the string.
 */
export function isoTimePerMillisecond(): () => string {
  let ms = Number.NaN;
  let field = '';
  return () => {
    const now = Date.now();
    if (now !== ms) {
      ms = now;
      field = `,"time":"${new Date(now).toISOString()}"`;
    }
    return field;
  };
}

export interface BatchedDestination extends DestinationStream {
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/** Where batches go: a sonic-boom in `contentMode: 'buffer'` (or anything that takes bytes the same way). */
export interface ByteSink {
  write(chunk: Buffer): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * Gathers lines into one string and hands it to `inner`, encoded once, when it reaches `maxChars` or
 * `maxDelayMs` after its first line. One write(2) per line cost more CPU than the rest of the proxy path;
 * sonic-boom's own buffering measures its whole pending string on every write (about 2.3 µs a line at
 * 8 KB), and in its string mode re-encodes every batch after writing it. Handed bytes, it does neither
 * (docs/performance.md).
 */
export function batchLines(inner: ByteSink, options: { maxChars?: number; maxDelayMs?: number } = {}): BatchedDestination {
  const maxChars = options.maxChars ?? 16_384;
  const maxDelayMs = options.maxDelayMs ?? 200;
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (pending === '') return;
    const batch = pending;
    pending = '';
    inner.write(Buffer.from(batch, 'utf8'));
  };
  return {
    write(line: string) {
      pending += line;
      if (pending.length >= maxChars) drain();
      else if (!timer) timer = setTimeout(drain, maxDelayMs).unref();
    },
    flush(cb) {
      drain();
      inner.flush(cb);
    },
    flushSync() {
      drain();
      inner.flushSync();
    },
  };
}

/** A file or descriptor written asynchronously by sonic-boom (EAGAIN retries, drain, flushSync at exit), in bytes. */
export function byteDestination(dest: number | string): ByteSink {
  const boom = pino.destination({ dest, sync: false, contentMode: 'buffer' });
  // sonic-boom's types declare string writes only; in contentMode 'buffer' it takes Buffers (and only those).
  const write = boom.write.bind(boom) as unknown as (chunk: Buffer) => boolean;
  return { write, flush: (cb) => boom.flush(cb), flushSync: () => boom.flushSync() };
}

/** stdout, written asynchronously in batches; what is still pending when the process exits is written then. */
function batchedStdout(): BatchedDestination {
  const out = batchLines(byteDestination(1));
  process.once('exit', () => {
    try {
      out.flushSync();
    } catch {
      // stdout is gone or still busy with an async write: nothing more can be done at exit.
    }
  });
  return out;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a well-formed incoming X-Request-Id (so traces join up across hops); anything else gets a fresh one. */
export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
