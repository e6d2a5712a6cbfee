import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
/**
 * Every error a client can see. The key is the stable `error` value of the JSON body;
 * `status` is the HTTP status it maps to. docs/errors.md is checked against this table by a test.
 */
export const CODES = {
  bad_request: { status: 400, message: 'The request is malformed.' },
  invalid_path: { status: 400, message: 'The request path is not allowed.' },
  invalid_host: { status: 400, message: 'The Host header is missing, repeated or malformed.' },
  invalid_state: { status: 400, message: 'The login attempt is unknown, expired or was already used. Start the login again.' },
  login_failed: { status: 400, message: 'The identity provider refused the login.' },
  invalid_logout_token: { status: 400, message: 'The logout token is not valid.' },
  validation_failed: { status: 400, message: 'The request does not match the schema declared for it.' },
  invalid_json: { status: 400, message: 'The request body is not acceptable JSON.' },
  unauthorized: { status: 401, message: 'A valid session is required.' },
  admin_unauthorized: {
    status: 401,
    message: 'Admin credentials are required: an X-Admin-Token header with ADMIN_TOKEN, or an operator session.',
  },
  session_expired: { status: 401, message: 'The session has expired. Log in again.' },
  forbidden: { status: 403, message: 'The request is not allowed.' },
  origin_not_allowed: { status: 403, message: 'The request origin is not allowed.' },
  admin_forbidden: { status: 403, message: 'This session does not have the claims admin.requireClaims asks for.' },
  csrf: { status: 403, message: 'The request looks cross-site and was refused (CSRF).' },
  not_found: { status: 404, message: 'Nothing is mapped to this path.' },
  method_not_allowed: { status: 405, message: 'The method is not allowed on this path.' },
  config_invalid: { status: 400, message: 'The configuration is not valid; nothing was changed. See problems.' },
  precondition_failed: { status: 412, message: 'The configuration changed since the version named in If-Match; fetch it again.' },
  precondition_required: { status: 428, message: 'If-Match with the configuration version being replaced is required.' },
  request_timeout: { status: 408, message: 'The request took too long to arrive.' },
  payload_too_large: { status: 413, message: 'The request body is larger than this endpoint accepts.' },
  uri_too_long: { status: 414, message: 'The request URL is too long.' },
  unsupported_media_type: { status: 415, message: 'The request body must be application/json in UTF-8, without Content-Encoding.' },
  too_many_requests: { status: 429, message: 'Too many requests.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal_error: { status: 500, message: 'An unexpected error occurred.' },
  bad_gateway: { status: 502, message: 'The backend could not be reached.' },
  idp_error: { status: 502, message: 'The identity provider failed to answer correctly.' },
  idp_unavailable: { status: 503, message: 'The identity provider is unavailable.' },
  session_store_unavailable: { status: 503, message: 'The session store is unavailable.' },
  backend_unavailable: { status: 503, message: 'The backend is unavailable.' },
  too_busy: { status: 503, message: 'Too many requests to this backend are in flight; retry shortly.' },
  not_ready: { status: 503, message: 'Not ready.' },
  shutting_down: { status: 503, message: 'The server is shutting down; retry on a new connection.' },
  gateway_timeout: { status: 504, message: 'The backend did not answer in time.' },
} as const;

export type ErrorCode = keyof typeof CODES;

export interface GatehouseErrorOptions {
  /** Safe, client-visible extra fields (never secrets, never internal host names). */
  details?: Record<string, unknown>;
  cause?: unknown;
  /** Log-only context. */
  logDetail?: string;
  /**
   * Response headers the answer must carry, as a flat [name, value, ...] list: built by Gatehouse (the
   * clearing Set-Cookie after a duplicated session cookie), never copied from a request.
   */
  headers?: readonly string[];
}

/** A failure with a stable code. The code is what clients see; the cause stays in the log. */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  readonly logDetail: string | undefined;
  readonly headers: readonly string[] | undefined;

  constructor(code: ErrorCode, options: GatehouseErrorOptions = {}) {
    super(options.logDetail ?? CODES[code].message, { cause: options.cause });
    this.name = 'GatehouseError';
    this.code = code;
    this.status = CODES[code].status;
    this.details = options.details;
    this.logDetail = options.logDetail;
    this.headers = options.headers;
  }

  /** The same failure (code, cause, log detail) with headers appended to its own and details merged over its own. */
  extend(more: { readonly headers?: readonly string[]; readonly details?: Record<string, unknown> }): GatehouseError {
    const headers = more.headers === undefined ? this.headers : this.headers ? [...this.headers, ...more.headers] : more.headers;
    const details = more.details === undefined ? this.details : { ...this.details, ...more.details };
    return new GatehouseError(this.code, {
      cause: this.cause,
      ...(this.logDetail !== undefined ? { logDetail: this.logDetail } : {}),
      ...(details ? { details } : {}),
      ...(headers ? { headers } : {}),
    });
  }
}

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  requestId?: string;
  [key: string]: unknown;
}

/**
 * Any thrown value as a GatehouseError: itself when it is one. A value with a numeric 4xx `status` (what
 * body-parser, serve-static and the router's URIError for a malformed %-escape throw) becomes `not_found` (404) or
 * `bad_request`; anything else is `internal_error`. The original is kept as the cause, for the log.
 */
export function asGatehouseError(err: unknown): GatehouseError {
  if (err instanceof GatehouseError) return err;
  const status = typeof err === 'object' && err !== null ? (err as { status?: unknown }).status : undefined;
  if (status === 404) return new GatehouseError('not_found');
  if (typeof status === 'number' && status >= 400 && status < 500) return new GatehouseError('bad_request', { cause: err });
  return new GatehouseError('internal_error', { cause: err });
}

/** The one place an error becomes a status and a body (HTTP responses and WebSocket upgrade refusals alike). */
export function toErrorResponse(
  err: unknown,
  requestId?: string,
): { status: number; body: ErrorBody; headers: readonly string[] | undefined } {
  const known = asGatehouseError(err);
  const body: ErrorBody = { ...known.details, error: known.code, message: CODES[known.code].message };
  if (requestId) body.requestId = requestId;
  return { status: known.status, body, headers: known.headers };
}

/** Configuration problems, all of them at once, each naming its source and field. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Writes the error on a plain node ServerResponse (Express responses are ones too): the JSON body, or, when `page`
 * is given (a browser navigation, see http/error-page.ts), the HTML page it renders from that body.
 */
export function sendError(res: ServerResponse, err: unknown, requestId?: string, page?: (body: ErrorBody) => string): void {
  const { status, body, headers } = toErrorResponse(err, requestId);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = page ? page(body) : JSON.stringify(body);
  lingerAfterAnswer(res);
  res.statusCode = status;
  res.setHeader('content-type', page ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('cache-control', 'no-store');
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="gatehouse"');
  // Appended, not set: a Set-Cookie the route already chose (clearing the login binding) must stay.
  if (headers) for (let i = 0; i < headers.length; i += 2) res.appendHeader(headers[i] as string, headers[i + 1] as string);
  res.end(text);
}

/** How long, and how much of the rest of a request body, a closing connection reads after its answer. */
export const LINGER = { maxMs: 5000, maxBytes: 4 * 1024 * 1024 } as const;

/**
 * nginx's lingering_close, for an answer sent before its request's body was read to the end (a 401 to a large
 * upload, a backend's early answer). When node:http then closes the connection (the client sent `Connection:
 * close`, or the answer says so), the unread bytes in the kernel's receive buffer turn the close into a TCP
 * reset, and a reset makes the client's kernel discard the answer it had not read yet: the client sees
 * ECONNRESET or EPIPE instead of the 401. So the socket is kept open (its write side ended) and the rest of the
 * body is read and discarded until it ends, for at most `LINGER.maxMs` and `LINGER.maxBytes`, and only then
 * closed. A connection kept alive reads the rest of the body anyway, as the framing of the next request.
 * Call before the answer ends.
 */
export function lingerAfterAnswer(res: ServerResponse): void {
  if (!res.req.complete) res.once('finish', lingerIfClosing);
}

function lingerIfClosing(this: ServerResponse): void {
  const req: IncomingMessage = this.req;
  const socket = req.socket;
  if (req.complete || socket.destroyed) return;
  // node:http destroys a closing connection once its FIN is out: socket.destroySoon() left socket.destroy as a
  // 'finish' listener. A kept-alive connection has none: node:http reads the body on (req._dump()) unless
  // something had started reading it (a backend that answered early stopped taking it), so it is resumed here.
  if (!socket.writableEnded || !socket.listeners('finish').includes(socket.destroy)) {
    req.resume();
    return;
  }
  socket.removeListener('finish', socket.destroy);
  let read = 0;
  const close = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(close, LINGER.maxMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  req.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > LINGER.maxBytes) close();
  });
  req.once('end', close);
  req.once('error', close);
  req.resume();
}

/**
 * Ends a socket Gatehouse is done with, and destroys it shortly after: an upgrade's socket is outside Node's HTTP
 * timeouts and may stay half open for as long as a client that never sends its FIN likes.
 */
export function endThenDestroy(socket: Duplex, data?: string): void {
  if (data === undefined) socket.end();
  else socket.end(data);
  setTimeout(destroyLater, 2000, socket).unref();
}

function destroyLater(socket: Duplex): void {
  socket.destroy();
}

/** Refuses a WebSocket upgrade or a CONNECT with a real HTTP response on the raw socket, then closes it. */
export function refuseUpgrade(socket: Duplex, err: unknown, requestId?: string): void {
  const { status, body, headers } = toErrorResponse(err, requestId);
  const text = JSON.stringify(body);
  let extra = '';
  if (headers) for (let i = 0; i < headers.length; i += 2) extra += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (socket.writable) {
    endThenDestroy(
      socket,
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
        'Connection: close\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\n' +
        `Content-Length: ${Buffer.byteLength(text)}\r\n${requestId ? `X-Request-Id: ${requestId}\r\n` : ''}${extra}\r\n${text}`,
    );
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  412: 'Precondition Failed',
  428: 'Precondition Required',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
