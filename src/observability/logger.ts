import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino censors: tokens, cookies, secrets and credentials never reach a log line. Exact paths only:
 * wildcard paths made redaction cost about 35 µs per line on the hot path (docs/performance.md), and
 * Gatehouse never logs header objects or token responses, so these are the shapes that could occur.
 */
const REDACT = [
  'authorization', 'cookie', 'password', 'secret', 'token', 'access_token', 'refresh_token', 'id_token',
  'client_secret', 'code_verifier', 'adminToken', 'headers.authorization', 'headers.cookie',
  'headers["set-cookie"]', 'headers["x-admin-token"]', 'req.headers.authorization', 'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  let destination = options.destination;
  if (!destination) {
    // Lines are gathered and written in batches: one write(2) per access-log line cost more CPU than the
    // rest of the proxy path (docs/performance.md). A timer bounds the delay; main.ts flushes on exit.
    const boom = pino.destination({ sync: false, minLength: 8192 });
    setInterval(() => boom.flush(), 250).unref();
    destination = boom;
  }
  return pino(
    {
      level: options.level,
      base: { service: 'gatehouse' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a well-formed incoming X-Request-Id (so traces join up across hops); anything else gets a fresh one. */
export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
