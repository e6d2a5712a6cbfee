import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Pipelining } from './pipelining.ts';

/**
 * Ends a server's keep-alive connections without resetting a request a client has sent.
 *
 * A keep-alive response invites the client to send its next request on the same connection, and that request
 * may already be on the wire when the server decides the connection is idle: closing it then answers the request
 * with a TCP reset (RFC 9112 §9.6). So once draining has begun, every response a connection still owes says
 * `Connection: close` (the client sends nothing more on it, and node:http closes it once that response is out),
 * and a connection that owes nothing is closed only after it has stayed silent for a grace period.
 */
export interface Drain {
  /** Whether {@link Drain.begin} was called: every response from then on says `Connection: close`. */
  readonly draining: boolean;
  /**
   * Starts draining: the last response owed on each connection, and every later one, says `Connection: close`.
   * The listener stays open and no connection is closed yet (see {@link Drain.stopAccepting}).
   */
  begin(): void;
  /** Called by the server's request handler, before `Pipelining.track`, for each request read while draining. */
  respond(req: IncomingMessage, res: ServerResponse): void;
  /** A connection handed to the upgrade handler is no HTTP connection any more: its owner closes it. */
  detach(socket: Socket): void;
  /**
   * Closes the listener and from then on closes connections quiet for the grace period; resolves once every
   * connection (WebSockets included) has closed.
   */
  stopAccepting(): Promise<void>;
  /** Stops the sweep and destroys every connection left (the deadline has passed). */
  end(): void;
}

export interface DrainOptions {
  /**
   * How long a connection owing no response must stay silent before it is closed. A client that read a keep-alive
   * response just before the drain began sends its next request within about a round trip; it is answered (with
   * `Connection: close`) instead of reset.
   */
  readonly idleGraceMs?: number;
  readonly sweepIntervalMs?: number;
}

const MARKED = Symbol('connection: close added by the drain');
type Marked = ServerResponse & { [MARKED]?: boolean };

// Only the last response owed on a connection may say close: node:http destroys the connection once a closing
// response is out, and any pipelined request read after it would then go unanswered.
function closeAfter(res: Marked): void {
  if (res.headersSent || !res.shouldKeepAlive) return;
  res.shouldKeepAlive = false;
  res[MARKED] = true;
}

function keepOpenAfter(res: Marked): void {
  if (res[MARKED] !== true || res.headersSent) return;
  res.shouldKeepAlive = true;
  res[MARKED] = false;
}

interface Quiet {
  readonly bytesRead: number;
  readonly since: number;
}

/** Tracks the server's connections from now on; nothing changes for them until {@link Drain.begin}. */
export function createDrain(server: Server, pipelining: Pipelining, options: DrainOptions = {}): Drain {
  const graceMs = options.idleGraceMs ?? 250;
  const sockets = new Set<Socket>();
  const quiet = new Map<Socket, Quiet>();
  let draining = false;
  let sweep: NodeJS.Timeout | undefined;

  function forget(this: Socket): void {
    sockets.delete(this);
    quiet.delete(this);
  }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', forget);
  });

  const stillQuiet = (socket: Socket) => pipelining.owed(socket) === 0 && quiet.get(socket)?.bytesRead === socket.bytesRead;
  // node:http's closeIdleConnections() would close a connection whose next request is on the wire (or whose
  // client connected and has not written yet); here a connection must owe nothing and read nothing for graceMs.
  const closeQuiet = () => {
    const now = Date.now();
    const due: Socket[] = [];
    for (const socket of sockets) {
      if (pipelining.owed(socket) > 0) {
        quiet.delete(socket);
        continue;
      }
      const seen = quiet.get(socket);
      if (seen === undefined || seen.bytesRead !== socket.bytesRead) quiet.set(socket, { bytesRead: socket.bytesRead, since: now });
      else if (now - seen.since >= graceMs) due.push(socket);
    }
    // Timers run before the event loop polls for I/O: after a stall, a request that arrived meanwhile is read
    // only in this iteration's poll phase. Closing after it (setImmediate) never judges a connection on stale bytes.
    if (due.length > 0)
      setImmediate(() => {
        for (const socket of due) if (stillQuiet(socket)) socket.destroy();
      });
  };

  return {
    get draining() {
      return draining;
    },
    begin() {
      if (draining) return;
      draining = true;
      for (const socket of sockets) {
        const res = pipelining.last(socket);
        if (res) closeAfter(res);
      }
    },
    respond(req, res) {
      const previous = pipelining.last(req.socket);
      if (previous) keepOpenAfter(previous);
      closeAfter(res);
    },
    detach(socket) {
      sockets.delete(socket);
      quiet.delete(socket);
    },
    stopAccepting() {
      // Not from begin(): during SHUTDOWN_DELAY_SECONDS the load balancer still sends, and a client still writing
      // its request headers, or connected and about to write, must not be taken for an idle connection.
      if (sweep === undefined) {
        closeQuiet();
        sweep = setInterval(closeQuiet, options.sweepIntervalMs ?? 50).unref();
      }
      // http.Server#close() would first close every connection node:http deems idle, the very reset avoided here:
      // closing the net.Server underneath stops the listener alone, and calls back once no connection is left.
      return new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
    },
    end() {
      clearInterval(sweep);
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      // Now http.Server#close() has nothing left to reset; it also stops node:http's request-timeout timer.
      server.close();
    },
  };
}
