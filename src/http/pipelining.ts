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
  /** Responses not finished yet on this connection. */
  owed(socket: Socket): number;
}

export function trackPipelining(server: Server): Pipelining {
  const owed = new WeakMap<Socket, number>();
  const count = (socket: Socket) => owed.get(socket) ?? 0;
  // A shared listener (no closure per request): the response knows its request, and the request its socket.
  function settled(this: ServerResponse): void {
    const socket = this.req.socket;
    const n = count(socket) - 1;
    if (n <= 0) owed.delete(socket);
    else owed.set(socket, n);
  }
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    owed.set(req.socket, count(req.socket) + 1);
    res.once('close', settled);
  });
  // With a checkContinue listener node:http sends no 100 itself: it is sent here only when this response is the
  // next one due. Otherwise none is sent, and the client sends its body after its own wait (RFC 9110 §10.1.1).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (count(req.socket) === 0) res.writeContinue();
    server.emit('request', req, res);
  });
  return { owed: count };
}
