import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths pino censors wherever they appear: tokens, cookies, secrets and credentials never reach a log line. */
const REDACT = [
  'authorization', 'cookie', 'set-cookie', 'password', 'secret', 'token',
  'access_token', 'refresh_token', 'id_token', 'client_secret', 'code_verifier',
  '*.authorization', '*.cookie', '*["set-cookie"]', '*.password', '*.secret', '*.token',
  '*.access_token', '*.refresh_token', '*.id_token', '*.client_secret', '*.code_verifier', '*.adminToken',
  'headers.authorization', 'headers.cookie', 'headers["set-cookie"]', 'headers["x-admin-token"]',
  '*.headers.authorization', '*.headers.cookie', '*.headers["set-cookie"]', '*.headers["x-admin-token"]',
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'gatehouse' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a well-formed incoming X-Request-Id (so traces join up across hops); anything else gets a fresh one. */
export function requestIdFrom(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}
