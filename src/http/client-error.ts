import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { endThenDestroy, GatehouseError, refuseUpgrade } from '../errors.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { cancelRequest, RESPONSE_CONTEXT, type RequestContext, type WithRequestContext } from '../policy/context.ts';
import type { Pipelining } from './pipelining.ts';

/** What node:http attaches to a parse error (lib/_http_server.js prepareError): the chunk it was parsing. */
interface ParseError extends Error {
  readonly code?: string;
  readonly rawPacket?: unknown;
  readonly bytesParsed?: unknown;
}

/** node:http's own answers for the errors Gatehouse leaves as they were (no body, connection closed). */
const BARE: Readonly<Record<string, number>> = { HPE_CHUNK_EXTENSIONS_OVERFLOW: 413 };

/**
 * Whether the head overflowed inside its request line: the part of the chunk read up to the error holds no
 * line break, or its last line starts like a request line (`METHOD SP`; a header line cannot, a field name has
 * no space). A line that began in an earlier chunk cannot be seen here: it counts as a header (431).
 */
export function overflowInRequestLine(raw: Buffer, bytesParsed: number): boolean {
  const seen = raw.subarray(0, Math.min(Math.max(bytesParsed, 0), raw.length));
  const lastBreak = seen.lastIndexOf(0x0a);
  const line = seen.subarray(lastBreak + 1, lastBreak + 1 + 24).toString('latin1');
  return /^[A-Z]{3,10} \S/.test(line);
}

/**
 * The server's `clientError` listener: a head over Node's 16 KiB limit gets Gatehouse's JSON answer, 414
 * `uri_too_long` when the request line is what overflowed, else 431 `headers_too_large`; a request that took
 * longer than `REQUEST_TIMEOUT_SECONDS` (or its head longer than 20 s) gets 408 `request_timeout`. Those are
 * logged and counted like any refusal. Every other parse error gets the bare answer node:http would have sent.
 * Behind answers still owed to requests read whole (pipelining), the answer waits for them, so it lands in
 * order; otherwise, as node:http does, nothing is written when an earlier response has begun (it would land
 * inside that response). The connection is closed.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-15.5.15
 * @see https://www.rfc-editor.org/rfc/rfc6585#section-5
 */
export function createClientErrorHandler(log: Logger, metrics: Metrics, pipelining: Pipelining): (err: ParseError, socket: Socket) => void {
  /** What a request cut for `err` is answered, as the same error alone would be (BARE, a trailer over 16 KiB). */
  const refusal = (err: ParseError): GatehouseError => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new GatehouseError('request_timeout', { logDetail: 'request timeout' });
    if (err.code === 'HPE_HEADER_OVERFLOW') return new GatehouseError('headers_too_large', { logDetail: 'trailer over 16 KiB' });
    const status = err.code !== undefined ? BARE[err.code] : undefined;
    if (status === 413) return new GatehouseError('payload_too_large', { logDetail: `parse error ${err.code}` });
    return new GatehouseError('bad_request', { logDetail: `parse error ${err.code ?? ''}`.trim() });
  };
  const refuse = (
    socket: Socket,
    code: 'uri_too_long' | 'headers_too_large' | 'request_timeout',
    logDetail: string,
    ctx?: RequestContext,
  ) => {
    const refused = new GatehouseError(code, { headers: ['X-Content-Type-Options', 'nosniff'], logDetail });
    metrics.errorResponse(refused.code, refused.status);
    if (ctx) {
      // A request its /api handler is still reading: answered under its id, and its own access line (which would
      // otherwise say the client left, 499) records the 408 and this code.
      ctx.error = refused;
      refuseUpgrade(socket, refused, ctx.id);
      return;
    }
    const id = requestIdFrom(undefined);
    log.info({ reqId: id, status: refused.status, code: refused.code, detail: refused.logDetail }, 'request');
    refuseUpgrade(socket, refused, id);
  };
  /** `after`: answers were written just before, and may still be queued on the socket: it is ended, not destroyed. */
  const answer = (err: ParseError, socket: Socket, after: boolean) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    // The request that broke or timed out has an answer under way (its backend answered early, or its body came
    // after all): that is its answer, left to finish, then the connection is closed.
    if (after && pipelining.last(socket)?.headersSent === true) return pipelining.afterOwed(socket, 0, () => endThenDestroy(socket));
    // A timeout not answered through the request's own response (only its head was read, or not /api): a fresh id.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return refuse(socket, 'request_timeout', 'request timeout');
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      const raw = err.rawPacket;
      const inLine = Buffer.isBuffer(raw) && overflowInRequestLine(raw, typeof err.bytesParsed === 'number' ? err.bytesParsed : raw.length);
      return refuse(socket, inLine ? 'uri_too_long' : 'headers_too_large', 'request head over 16 KiB');
    }
    const status = (err.code !== undefined ? BARE[err.code] : undefined) ?? 400;
    const text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n\r\n`;
    if (after) return endThenDestroy(socket, text);
    socket.write(text);
    socket.destroy(err);
  };
  return (err, socket) => {
    // Its end is decided (an answer waits for the ones owed before it): node:http's later errors on the connection
    // (its request timeout, for one, still counts the request that failed to parse) change nothing.
    if (pipelining.stopped(socket)) return;
    const inFlight = (socket as Socket & { _httpMessage?: ({ _headerSent?: boolean } & WithRequestContext) | null })._httpMessage;
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const last = pipelining.last(socket);
    if (last !== undefined) {
      // Answers owed to requests before the one that failed (the last request read, if its body is what broke or
      // timed out, is not among them): the client would take an answer written now for the answer to its first
      // request, which the backend may have carried out. It waits for them. node:http still parses after a
      // timeout: nothing more it reads on this connection is processed.
      const left = last.req.complete ? 0 : 1;
      if (pipelining.owed(socket) > left) {
        pipelining.stop(socket);
        // The request whose body broke or timed out is on its way to its backend (/api): cut from it now, whatever
        // of its body may still come, and answered through its own response, in its turn.
        if (left === 1 && cancelRequest(last, refusal(err))) return;
        pipelining.afterOwed(socket, left, () => answer(err, socket, true));
        return;
      }
    }
    if (!socket.writable || inFlight?._headerSent === true) {
      socket.destroy();
      return;
    }
    // Nothing before it is owed: the response node:http has on the connection, if any, is the timed-out request's.
    if (timeout) return refuse(socket, 'request_timeout', 'request timeout', inFlight?.[RESPONSE_CONTEXT]);
    answer(err, socket, false);
  };
}
