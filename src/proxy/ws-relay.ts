import type { Duplex } from 'node:stream';
import { allowedRsv, closeFrame, FrameTracker, type FrameViolation } from './ws-frames.ts';

/**
 * How long a pending close may wait for the next backend frame boundary, and how long a closing socket may take
 * to flush and answer: a peer that stops reading cannot hold a revoked connection open.
 */
const CLOSE_GRACE_MS = 1000;
/** setTimeout's ceiling (2^31 - 1 ms, about 24.8 days); a longer lifetime re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** When the idle check itself fails (store unreachable), when to ask again: a store blip closes no WebSocket. */
const IDLE_RETRY_MS = 5000;

export interface RelayOptions {
  /** The client's socket; the backend's 101 has already been written to it. */
  readonly client: Duplex;
  /** Bytes the client sent after its upgrade request (node:http's `head`): frames, checked like the rest. */
  readonly clientHead: Buffer;
  /** The backend's socket, just past its 101. */
  readonly backend: Duplex;
  /** Bytes the backend sent after its 101. */
  readonly backendHead: Buffer;
  /** The `Sec-WebSocket-Extensions` of the backend's 101 (what was negotiated), undefined when absent. */
  readonly extensions: string | undefined;
  /** How long the identity behind the connection lives at most (session absolute end, token exp): then close 1008. */
  readonly lifetimeMs?: number;
  /**
   * For an identity that can end sooner (a session's idle timeout, which no event announces): ms until it could
   * first have ended, and a check answering how many ms it has left now (0 or less: it has ended), asked again
   * when that time is up. Close 1008 once it has ended.
   */
  readonly idle?: { readonly firstCheckMs: number; readonly remainingMs: () => Promise<number> };
  /** Called on client traffic, at most once per `activityIntervalMs` (default 1000). */
  readonly onActivity?: () => void;
  readonly activityIntervalMs?: number;
  /** Called when a peer sent an illegal frame, before the connection is closed for it. */
  readonly onViolation?: (from: 'client' | 'backend', violation: FrameViolation) => void;
}

/** A relay between a client and a backend WebSocket, past the handshake. */
export interface WsRelay {
  /**
   * Ends the connection with a close frame to the client: client→backend relaying stops at once, the close frame
   * goes out at the next backend→client frame boundary, and both sockets are destroyed if none comes within
   * CLOSE_GRACE_MS. Later calls are ignored.
   */
  close(code: number, reason: string): void;
}

const OPEN = 0;
/** close() was called; waiting for a backend→client frame boundary. */
const CLOSING = 1;
/** Nothing is relayed any more; the sockets are ending (bounded by the grace timer). */
const FINISHING = 2;

// Listeners and timers are shared functions that find their relay on the socket (EventEmitter calls a listener
// with the emitter as `this`) or get it as the timer argument: no closures per connection, which matters to
// many idle WebSockets.
const RELAY: unique symbol = Symbol('gatehouse.wsRelay');
type Tagged = Duplex & { [RELAY]?: Relay };
const relayOf = (socket: Duplex): Relay => (socket as Tagged)[RELAY] as Relay;

function clientData(this: Duplex, chunk: Buffer): void {
  relayOf(this).fromClient(chunk);
}
function backendData(this: Duplex, chunk: Buffer): void {
  relayOf(this).fromBackend(chunk);
}
function clientDrain(this: Duplex): void {
  relayOf(this).backend.resume();
}
function backendDrain(this: Duplex): void {
  relayOf(this).client.resume();
}
function clientEnd(this: Duplex): void {
  relayOf(this).clientEnded();
}
function backendEnd(this: Duplex): void {
  relayOf(this).backendEnded();
}
function socketClose(this: Duplex): void {
  relayOf(this).socketClosed();
}
function socketError(this: Duplex): void {
  relayOf(this).destroy();
}
function graceOver(relay: Relay): void {
  relay.destroy();
}
function lifetimeOver(relay: Relay): void {
  relay.expire();
}

class Relay implements WsRelay {
  readonly client: Duplex;
  readonly backend: Duplex;
  /** Backend→client frames: where the close frame may go, and what the client may be sent. */
  private readonly down: FrameTracker;
  /** Client→backend frames: what the backend may be sent. */
  private readonly up: FrameTracker;
  private state = OPEN;
  private closeCode = 0;
  private closeReason = '';
  private ended = false;
  private grace: NodeJS.Timeout | undefined;
  private lifetime: NodeJS.Timeout | undefined;
  private readonly expiresAt: number;
  /** Next idle check (ms since epoch; Infinity: none). */
  private checkAt: number;
  private readonly idleRemaining: (() => Promise<number>) | undefined;
  private lastActivity = 0;
  private readonly activityIntervalMs: number;
  private readonly onActivity: (() => void) | undefined;
  private readonly onViolation: RelayOptions['onViolation'];

  constructor(o: RelayOptions) {
    this.client = o.client;
    this.backend = o.backend;
    const rsv = allowedRsv(o.extensions);
    this.down = new FrameTracker({ from: 'server', rsvFirst: rsv.first, rsvOther: rsv.other });
    this.up = new FrameTracker({ from: 'client', rsvFirst: rsv.first, rsvOther: rsv.other });
    this.onActivity = o.onActivity;
    this.activityIntervalMs = o.activityIntervalMs ?? 1000;
    this.onViolation = o.onViolation;
    const now = Date.now();
    this.expiresAt = o.lifetimeMs === undefined ? Infinity : now + Math.max(0, o.lifetimeMs);
    this.checkAt = o.idle === undefined ? Infinity : now + Math.max(0, o.idle.firstCheckMs);
    this.idleRemaining = o.idle?.remainingMs;
  }

  start(clientHead: Buffer, backendHead: Buffer): void {
    const { client, backend } = this;
    (client as Tagged)[RELAY] = this;
    (backend as Tagged)[RELAY] = this;
    client.on('data', clientData).on('drain', clientDrain).on('end', clientEnd).on('close', socketClose).on('error', socketError);
    backend.on('data', backendData).on('drain', backendDrain).on('end', backendEnd).on('close', socketClose).on('error', socketError);
    this.armLifetime();
    client.resume();
    backend.resume();
    if (backendHead.length > 0) this.fromBackend(backendHead);
    if (clientHead.length > 0) this.fromClient(clientHead);
  }

  fromClient(chunk: Buffer): void {
    // After close() (revocation, logout, session end) not one more byte reaches the backend, even while the
    // backend→client direction is still waiting for a frame boundary.
    if (this.state !== OPEN || !this.backend.writable) return;
    const up = this.up;
    up.advance(chunk, false);
    if (up.error !== undefined) {
      this.onViolation?.('client', up.error);
      this.close(up.error.code, up.error.reason);
      return;
    }
    if (this.onActivity !== undefined) {
      const now = Date.now();
      if (now - this.lastActivity >= this.activityIntervalMs) {
        this.lastActivity = now;
        this.onActivity();
      }
    }
    if (!this.backend.write(chunk)) this.client.pause();
  }

  fromBackend(chunk: Buffer): void {
    if (this.state === FINISHING) return;
    const down = this.down;
    const closing = this.state === CLOSING;
    const n = down.advance(chunk, closing);
    if (down.error !== undefined) {
      this.backendViolation(chunk, n, down.error);
      return;
    }
    if (n > 0 && !this.client.write(n === chunk.length ? chunk : chunk.subarray(0, n))) this.backend.pause();
    if (closing && down.atBoundary()) this.sendClose();
  }

  private backendViolation(chunk: Buffer, relayable: number, violation: FrameViolation): void {
    this.onViolation?.('backend', violation);
    this.backend.destroy();
    if (relayable > 0) this.client.write(chunk.subarray(0, relayable));
    // Part of the illegal frame already went out: a close frame after it would be read as its payload.
    if (!this.down.atBoundary()) {
      this.destroy();
      return;
    }
    if (this.state === OPEN) {
      this.closeCode = violation.code;
      this.closeReason = violation.reason;
    }
    this.sendClose();
  }

  close(code: number, reason: string): void {
    if (this.state !== OPEN) return;
    this.state = CLOSING;
    this.closeCode = code;
    this.closeReason = reason;
    clearTimeout(this.lifetime);
    if (this.down.atBoundary()) {
      this.sendClose();
      return;
    }
    this.grace = setTimeout(graceOver, CLOSE_GRACE_MS, this);
    this.grace.unref();
  }

  /** RFC 6455 §7.1.1/§7.1.2: the server sends its close frame and then ends the TCP connection. */
  private sendClose(): void {
    this.state = FINISHING;
    clearTimeout(this.grace);
    this.backend.destroy();
    this.client.end(closeFrame(this.closeCode, this.closeReason));
    this.grace = setTimeout(graceOver, CLOSE_GRACE_MS, this);
    this.grace.unref();
  }

  clientEnded(): void {
    // Half-close travels on, as a pipe would; a closing connection has nothing more for the backend anyway.
    if (this.state === OPEN) this.backend.end();
  }

  backendEnded(): void {
    if (this.state === OPEN) this.finish();
    // Closing means the client sits inside a backend frame that will now never end: no clean close is possible.
    else if (this.state === CLOSING) this.destroy();
  }

  socketClosed(): void {
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this.lifetime);
    }
    if (this.client.destroyed && this.backend.destroyed) {
      clearTimeout(this.grace);
      return;
    }
    if (this.state === OPEN) this.finish();
    else if (this.state === CLOSING) this.destroy();
  }

  /** One side is gone: the other gets what is already queued for it, then its end, within the grace. */
  private finish(): void {
    this.state = FINISHING;
    clearTimeout(this.grace);
    if (!this.client.destroyed) this.client.end();
    if (!this.backend.destroyed) this.backend.end();
    this.grace = setTimeout(graceOver, CLOSE_GRACE_MS, this);
    this.grace.unref();
  }

  destroy(): void {
    this.state = FINISHING;
    this.client.destroy();
    this.backend.destroy();
  }

  expire(): void {
    if (this.state !== OPEN) return;
    const now = Date.now();
    if (now >= this.expiresAt) {
      this.close(1008, 'session expired');
      return;
    }
    if (now < this.checkAt || this.idleRemaining === undefined) {
      this.armLifetime();
      return;
    }
    this.idleRemaining().then(
      (left) => {
        if (left <= 0) return this.close(1008, 'session expired');
        this.checkAt = Date.now() + left;
        this.armLifetime();
      },
      () => {
        this.checkAt = Date.now() + IDLE_RETRY_MS;
        this.armLifetime();
      },
    );
  }

  private armLifetime(): void {
    if (this.state !== OPEN) return;
    const next = Math.min(this.expiresAt, this.checkAt);
    if (next === Infinity) return;
    this.lifetime = setTimeout(lifetimeOver, Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS), this);
    this.lifetime.unref();
  }
}

/**
 * Relays a WebSocket between client and backend once the backend's 101 has been passed on: bytes go through
 * unchanged and uncopied, while both directions are followed frame by frame (headers only) so that
 * - an illegal frame from either side ends the connection with 1002 (RFC 6455 §7.4.1) instead of being relayed;
 * - Gatehouse's own close frame (revocation, logout, session end, shutdown) goes out between two backend frames;
 * - the connection ends with 1008 when its identity's lifetime does.
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-5
 */
export function startRelay(options: RelayOptions): WsRelay {
  const relay = new Relay(options);
  relay.start(options.clientHead, options.backendHead);
  return relay;
}
