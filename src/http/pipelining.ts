import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

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
}

/** The count rides on the socket itself: a property read is cheaper than a WeakMap lookup on every request. */
const OWED = Symbol('responses owed');
const LAST = Symbol('last response owed');
type Counted = Socket & { [OWED]?: number; [LAST]?: ServerResponse | undefined };

function owed(socket: Socket): number {
  return (socket as Counted)[OWED] ?? 0;
}

// Shared listener (no closure per request): the response knows its request, and the request its socket.
function settled(this: ServerResponse): void {
  const socket = this.req.socket as Counted;
  socket[OWED] = owed(socket) - 1;
  if (socket[LAST] === this) socket[LAST] = undefined;
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
  };
}
