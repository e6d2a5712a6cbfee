import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { listTokens } from '../proxy/upstream/grammar.ts';

/**
 * Responses owed on each client connection. HTTP/1.1 answers pipelined requests in order (RFC 9112 §9.3.2),
 * but node:http writes two things out of turn: an upgrade's answer (the upgrade handler writes on the raw
 * socket while an earlier response is still pending) and its automatic `100 Continue` (written as soon as a
 * later request asks for it, into the middle of the response being sent). Both would put bytes where the
 * client expects another response.
 */
export interface Pipelining {
  /** Counts a response as owed until it closes: the first thing the server's request handler does. */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** Responses not finished yet on this connection. */
  owed(socket: Socket): number;
  /** The response to the last request read on this connection, while it is owed. */
  last(socket: Socket): ServerResponse | undefined;
  /**
   * A response before this request closes the connection (it says `Connection: close`, or is out and the
   * connection ending, or answers HTTP/1.0 and is made to close): the request must not be processed (RFC 9112
   * §9.6). Asked before `track`.
   */
  closing(req: IncomingMessage): boolean;
  /** Calls `then` once at most `left` responses are owed on this connection (at once when that holds now). */
  afterOwed(socket: Socket, left: number, then: () => void): void;
  /** Nothing more read on this connection is processed (`closing` says so): its end is decided. */
  stop(socket: Socket): void;
  /** Whether {@link Pipelining.stop} was called on this connection. */
  stopped(socket: Socket): boolean;
}

/** The count rides on the socket itself: a property read is cheaper than a WeakMap lookup on every request. */
const OWED = Symbol('responses owed');
const LAST = Symbol('last response owed');
const AFTER = Symbol('called once few enough responses are owed');
const STOPPED = Symbol('nothing more is processed');
interface After {
  readonly left: number;
  readonly call: () => void;
}
type Counted = Socket & { [OWED]?: number; [LAST]?: ServerResponse | undefined; [AFTER]?: After | undefined; [STOPPED]?: true };

function owed(socket: Socket): number {
  return (socket as Counted)[OWED] ?? 0;
}

// Shared listener (no closure per request): the response knows its request, and the request its socket.
function settled(this: ServerResponse): void {
  const socket = this.req.socket as Counted;
  socket[OWED] = owed(socket) - 1;
  if (socket[LAST] === this) socket[LAST] = undefined;
  const after = socket[AFTER];
  if (after !== undefined && socket[OWED] <= after.left) {
    socket[AFTER] = undefined;
    after.call();
  }
}

/** The response will close its connection: Gatehouse said `Connection: close` (or the client did, or the drain). */
function closes(res: ServerResponse): boolean {
  if (!res.shouldKeepAlive) return true;
  const connection = res.getHeader('connection');
  return typeof connection === 'string' && listTokens(connection).includes('close');
}

/**
 * A response to a request that is not HTTP/1.1 (1.0, and the 0.9 and 2.0 that node:http also reads on a request
 * line) may yet close its connection without anyone having said so: one without a Content-Length cannot be
 * chunked, and node:http decides to close when it writes the head. Nothing read behind it is processed, then, and it
 * closes the connection in every case, so the client is not left waiting on a request that will never be answered.
 */
function mayCloseLate(res: ServerResponse): boolean {
  return res.req.httpVersionMajor !== 1 || res.req.httpVersionMinor !== 1;
}

function closeAfter(res: ServerResponse): void {
  if (!res.headersSent) res.shouldKeepAlive = false;
  else res.once('finish', endConnection);
}

function endConnection(this: ServerResponse): void {
  this.req.socket.destroySoon();
}

/**
 * Called by the server's one request handler (a second 'request' listener would make every emit copy the
 * listener list), and answers `Expect: 100-continue` itself.
 */
export function createPipelining(server: Server): Pipelining {
  // With a checkContinue listener node:http sends no 100 itself: it is sent here only when this response is the
  // next one due. Otherwise none is sent, and the client sends its body after its own wait (RFC 9110 §10.1.1).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (owed(req.socket) === 0) res.writeContinue();
    // Without its 100, node:http closes the connection after this response (the client may or may not send the
    // body): said now, so that closing() already sees it when a request pipelined after this one is read.
    else res.shouldKeepAlive = false;
    server.emit('request', req, res);
  });
  return {
    track(req, res) {
      const socket = req.socket as Counted;
      socket[OWED] = owed(socket) + 1;
      socket[LAST] = res;
      // 'close' comes once per response (after its end, or with the connection), so `on` is enough.
      res.on('close', settled);
    },
    owed,
    last: (socket) => (socket as Counted)[LAST],
    closing(req) {
      // node:http parses on past a response that closes the connection and emits what follows as requests:
      // bytes after a request refused for its framing, say, which are exactly the bytes not to be trusted.
      const socket = req.socket as Counted;
      if (socket.writableEnded || socket.destroyed || socket[STOPPED]) return true;
      const previous = socket[LAST];
      if (previous === undefined) return false;
      if (closes(previous)) return true;
      if (!mayCloseLate(previous)) return false;
      closeAfter(previous);
      return true;
    },
    stop(socket) {
      (socket as Counted)[STOPPED] = true;
    },
    stopped: (socket) => (socket as Counted)[STOPPED] === true,
    afterOwed(socket, left, then) {
      if (owed(socket) <= left) then();
      else (socket as Counted)[AFTER] = { left, call: then };
    },
  };
}
