import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { asGatehouseError, endThenDestroy, GatehouseError, refuseUpgrade } from '../errors.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { OutageLog } from '../observability/outage-log.ts';
import type { Admission, Admit, Principal } from '../policy/admit.ts';
import { createRequestContext } from '../policy/context.ts';
import type { SessionManager, SessionSecret } from '../session/sessions.ts';
import { upstreamFailure } from './forward.ts';
import { buildUpstreamHeaders, filterResponseHeaders, identityHeaderLines, scanHeaders, setsOwnCookie, upstreamCookie } from './headers.ts';
import { FALLBACK, isGuardRefusal, type RouteGuard } from './backends/guard.ts';
import { guardOf, type Runtime } from './runtime.ts';
import type { UpgradeHandler, UpstreamControl, UpstreamError } from './upstream/client.ts';
import type { ResponseHead } from './upstream/response-head.ts';
import { startRelay, type RelayOptions, type WsRelay } from './ws-relay.ts';

/**
 * A live proxied WebSocket. close() stops client→backend traffic at once and sends the close frame at the next
 * backend→client frame boundary, destroying both sockets if none comes within a second (see ws-relay.ts).
 */
export interface WsConnection {
  readonly sessionKey: string | undefined;
  /** The identity it was opened with (absent on anonymous mappings). */
  readonly sub?: string;
  readonly tokenJti?: string;
  readonly issuedAt?: number;
  close(code: number, reason: string): void;
}

export interface WsRegistry {
  add(conn: WsConnection): void;
  remove(conn: WsConnection): void;
  closeSession(key: string, code: number, reason: string): number;
  /** Closes every connection `match` selects (token or user revocations); returns how many. */
  closeWhere(match: (conn: WsConnection) => boolean, code: number, reason: string): number;
  /** Counts one more connection for `owner` unless it already holds `max`; release() gives it back. */
  tryReserve(owner: string, max: number): boolean;
  release(owner: string): void;
  closeAll(code: number, reason: string): void;
  size(): number;
  /**
   * How many session, token or user revocations have reached this registry so far: an upgrade whose admission
   * overlapped one checks its identity again (its connection was not registered yet when it was sent).
   */
  revocations(): number;
}

export function createWsRegistry(): WsRegistry {
  const all = new Set<WsConnection>();
  const bySession = new Map<string, Set<WsConnection>>();
  const reserved = new Map<string, number>();
  let revocations = 0;
  return {
    closeWhere(match, code, reason) {
      revocations++;
      let n = 0;
      for (const c of [...all]) {
        if (!match(c)) continue;
        c.close(code, reason);
        n++;
      }
      return n;
    },
    tryReserve(owner, max) {
      const held = reserved.get(owner) ?? 0;
      if (held >= max) return false;
      reserved.set(owner, held + 1);
      return true;
    },
    release(owner) {
      const held = (reserved.get(owner) ?? 1) - 1;
      if (held <= 0) reserved.delete(owner);
      else reserved.set(owner, held);
    },
    add(conn) {
      all.add(conn);
      if (conn.sessionKey) {
        let set = bySession.get(conn.sessionKey);
        if (!set) bySession.set(conn.sessionKey, (set = new Set()));
        set.add(conn);
      }
    },
    remove(conn) {
      all.delete(conn);
      if (conn.sessionKey) {
        const set = bySession.get(conn.sessionKey);
        set?.delete(conn);
        if (set?.size === 0) bySession.delete(conn.sessionKey);
      }
    },
    closeSession(key, code, reason) {
      revocations++;
      const set = bySession.get(key);
      if (!set) return 0;
      const n = set.size;
      for (const c of [...set]) c.close(code, reason);
      return n;
    },
    closeAll(code, reason) {
      for (const c of [...all]) c.close(code, reason);
    },
    size: () => all.size,
    revocations: () => revocations,
  };
}

/** `name: value` lines, each ended by CRLF, from a flat [name, value, ...] list. */
function fieldLines(list: readonly string[] | undefined): string {
  let out = '';
  if (list) for (let i = 0; i < list.length; i += 2) out += `${list[i] as string}: ${list[i + 1] as string}\r\n`;
  return out;
}

/** A response head as the client gets it: the backend's status and filtered headers, then `extra` lines. */
function headText(head: ResponseHead, headers: readonly string[], extra: string): string {
  return `HTTP/1.1 ${head.status} ${STATUS_CODES[head.status] ?? ''}\r\n${fieldLines(headers)}${extra}\r\n`;
}

/**
 * The backend's side of one upgrade, through the upstream client (one transport, one set of framing rules
 * for HTTP and WebSocket handshakes). A decline is relayed as the backend's answer, then the connection
 * closes; a 101 is relayed as it is (Upgrade and Connection must pass), minus any Set-Cookie for
 * Gatehouse's own cookies, and hands both sockets to the relay.
 */
class Handshake implements UpgradeHandler {
  control: UpstreamControl | undefined;
  /** The backend's answer (a decline) has begun to reach the client: nothing else may be written now. */
  started = false;
  private readonly client: Duplex;
  private readonly ownCookies: readonly string[];
  /** Header lines Gatehouse adds to either answer (the clearing Set-Cookie after a duplicated session cookie). */
  private readonly extra: string;
  private readonly refuse: (err: unknown) => void;
  private readonly onSwitched: (head: ResponseHead, backend: Socket, rest: Buffer) => void;

  constructor(
    client: Duplex,
    ownCookies: readonly string[],
    extra: readonly string[] | undefined,
    refuse: (err: unknown) => void,
    onSwitched: (head: ResponseHead, backend: Socket, rest: Buffer) => void,
  ) {
    this.client = client;
    this.ownCookies = ownCookies;
    this.extra = fieldLines(extra);
    this.refuse = refuse;
    this.onSwitched = onSwitched;
  }

  /** The client went away during the handshake: so does the backend's half. */
  readonly onClientClose = (): void => {
    this.control?.abort();
  };

  onUpgrade(head: ResponseHead, backend: Socket, rest: Buffer): void {
    // From here on the handshake (and the upgrade's request, which its callbacks reach) can be collected.
    this.client.off('close', this.onClientClose);
    if (this.client.destroyed) {
      backend.destroy();
      return;
    }
    const headers: string[] = [];
    for (let i = 0; i < head.headers.length; i += 2) {
      const name = head.headers[i] as string;
      if (name === 'set-cookie' && setsOwnCookie(head.headers[i + 1] as string, this.ownCookies)) continue;
      headers.push(name, head.headers[i + 1] as string);
    }
    // latin1: header bytes go back out as they came (obs-text is not re-encoded as UTF-8).
    this.client.write(headText(head, headers, this.extra), 'latin1');
    this.onSwitched(head, backend, rest);
  }

  onResponseStart(head: ResponseHead): void {
    this.started = true;
    // The body arrives decoded: framing and hop-by-hop headers are dropped and it ends with the connection.
    this.client.write(
      headText(head, filterResponseHeaders(head.headers, head.connectionTokens, [], this.ownCookies), `${this.extra}connection: close\r\n`),
      'latin1',
    );
  }

  onResponseData(chunk: Buffer): boolean {
    if (this.client.write(chunk)) return true;
    this.client.once('drain', () => this.control?.resume());
    return false;
  }

  onResponseEnd(): void {
    endThenDestroy(this.client);
  }

  onResponseError(err: UpstreamError): void {
    if (this.client.destroyed) return;
    if (this.started) this.client.destroy();
    else this.refuse(upstreamFailure(err));
  }
}

/** The extensions the backend's 101 agreed to, as one list (the relay decides which RSV bits they allow). */
function extensionsOf(head: ResponseHead): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < head.headers.length; i += 2) {
    if (head.headers[i] === 'sec-websocket-extensions')
      out = out === undefined ? (head.headers[i + 1] as string) : `${out}, ${head.headers[i + 1] as string}`;
  }
  return out;
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

/**
 * Until the client socket closes, its identity holds one of its WebSocket places and the registry knows it. A
 * module-level function: the listener closes over these three values only, not over the upgrade's request.
 */
function trackUntilClosed(socket: Duplex, registry: WsRegistry, conn: WsConnection, owner: string | undefined): void {
  registry.add(conn);
  socket.once('close', () => {
    registry.remove(conn);
    if (owner !== undefined) registry.release(owner);
  });
}

/** A module-level function, so the listener closes over the guard only. */
function releaseOnClose(socket: Duplex, guard: RouteGuard): void {
  socket.once('close', () => guard.leaveStream());
}

/** The registry's view of one open WebSocket: the identity it was opened with, and its relay. */
class Connection implements WsConnection {
  readonly sessionKey: string | undefined;
  readonly sub?: string;
  readonly tokenJti?: string;
  readonly issuedAt?: number;
  relay: WsRelay | undefined;
  /** Before the backend's 101: ends the handshake when this connection is closed (revoked) meanwhile. */
  cancel: ((reason: string) => void) | undefined;

  constructor(principal: Principal | undefined) {
    this.sessionKey = principal?.sessionKey;
    if (principal) {
      this.sub = String(principal.claims['sub']);
      this.issuedAt = principal.issuedAt;
      if (principal.tokenJti !== undefined) this.tokenJti = principal.tokenJti;
    }
  }

  close(code: number, reason: string): void {
    if (this.relay) this.relay.close(code, reason);
    else this.cancel?.(reason);
  }
}

/**
 * Past the backend's 101: the relay (the registry entry is trackUntilClosed's, from admission to the client's
 * close). A module-level function so that the callbacks an open WebSocket keeps hold of close over these few
 * values only, not over the handshake's request and response.
 */
function relayUpgraded(
  ctx: {
    log: Logger;
    touch: (cookie: SessionSecret) => void;
    idleLeft: (cookie: SessionSecret) => Promise<number>;
    reqId: string;
    route: string;
  },
  conn: Connection,
  session: { cookie: SessionSecret; idleLeftMs: number } | undefined,
  options: Omit<RelayOptions, 'onActivity' | 'onViolation' | 'idle'>,
): void {
  const { log, touch, idleLeft, reqId, route } = ctx;
  conn.relay = startRelay({
    ...options,
    // Traffic on an open WebSocket is use of the session, as an HTTP request is: it rolls the idle timeout; and
    // a session that idles out all the same takes its WebSockets with it.
    ...(session
      ? { onActivity: () => touch(session.cookie), idle: { firstCheckMs: session.idleLeftMs, remainingMs: () => idleLeft(session.cookie) } }
      : {}),
    onViolation: (from, v) => log.info({ reqId, route, from, code: v.code, detail: v.reason }, 'websocket illegal frame'),
  });
}

/**
 * WebSocket upgrades on /api/*: the same admission as HTTP (host, path, mapping, the Origin check against
 * cross-site WebSocket hijacking, session, auth policy). After the backend's 101, ws-relay.ts relays the
 * frames unchanged (subprotocols, binary frames, ping/pong, close codes) and refuses illegal ones.
 */
export function createUpgradeHandler(deps: {
  runtime: () => Runtime;
  /** The admission pipeline (policy/admit.ts), the same one the HTTP path runs. */
  admit: Admit;
  /** To roll a session's idle timeout while its WebSockets carry traffic, and to see when it idles out all the same. */
  sessions: Pick<SessionManager, 'peek' | 'load' | 'touch'>;
  log: Logger;
  /** Where Redis and IdP failures go: one line per outage interval, not one per refused upgrade. */
  outages: OutageLog;
  registry: WsRegistry;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const { admit, sessions, log, outages, registry } = deps;
  // Like an HTTP request: the cached session costs nothing, else one store read; sessions.touch() throttles the write.
  const touch = (cookie: SessionSecret): void => {
    const cached = sessions.peek(cookie);
    if (cached) return sessions.touch(cached);
    // A failed read (store down) only skips this roll; the next activity tries again.
    sessions.load(cookie).then(
      (s) => s && sessions.touch(s),
      () => undefined,
    );
  };
  // A session's idle end is no event (its key just expires in the store): a WebSocket asks when it is due.
  const idleLeft = async (cookie: SessionSecret): Promise<number> => {
    const session = sessions.peek(cookie) ?? (await sessions.load(cookie));
    return session ? session.idleExpiresAt - now() : 0;
  };
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const rt = deps.runtime();
    const facts = scanHeaders(req.rawHeaders);
    const ctx = createRequestContext(requestIdFrom(facts.requestId), log, rt, Date.now());
    const url = req.url ?? '/';
    socket.on('error', destroySelf);
    const refuse = (err: unknown) => {
      const known = asGatehouseError(err);
      ctx.error = known;
      log.info({ reqId: ctx.id, path: url.split('?', 1)[0], code: known.code, detail: known.logDetail }, 'websocket refused');
      if (known.status >= 500 && !isGuardRefusal(known.code) && !outages.failed(known, ctx.id))
        log.error({ reqId: ctx.id, err: known.cause ?? known }, 'websocket error');
      refuseUpgrade(socket, known, ctx.id);
    };
    if (!/^\/api(\/|\?|$)/.test(url)) return refuse(new GatehouseError('not_found'));
    // Only real WebSocket upgrades are tunnelled (no h2c or other protocols: upgrade smuggling).
    if (req.httpVersion !== '1.1' || req.method !== 'GET' || facts.upgrade?.toLowerCase() !== 'websocket') {
      return refuse(new GatehouseError('bad_request', { logDetail: 'not a WebSocket upgrade' }));
    }
    if (facts.refusal !== undefined) return refuse(new GatehouseError('bad_request', { logDetail: facts.refusal }));
    const connectBackend = (a: Admission, conn: Connection, origin: string, base: string): void => {
      const lines = a.principal ? identityHeaderLines(a.route, a.principal, ctx.id, log) : undefined;
      const headers = buildUpstreamHeaders(facts, a.route, lines, a.client, a.hostHeader, ctx.id, upstreamCookie(rt, facts.cookie));
      const cookie = a.sessionSecret;
      const { principal, route } = a;
      const handshake = new Handshake(socket, rt.ownCookies, a.responseHeaders, refuse, (res, backendSocket, backendHead) => {
        conn.cancel = undefined;
        const idleEnd = cookie !== undefined ? sessions.peek(cookie)?.idleExpiresAt : undefined;
        relayUpgraded(
          { log, touch, idleLeft, reqId: ctx.id, route: route.name },
          conn,
          cookie !== undefined ? { cookie, idleLeftMs: (idleEnd ?? now() + rt.config.session.idleTtlSeconds * 1000) - now() } : undefined,
          {
            client: socket,
            clientHead: head,
            backend: backendSocket,
            backendHead,
            extensions: extensionsOf(res),
            // An identity that ends (session absolute lifetime, bearer token exp) takes its WebSockets with it.
            ...(principal ? { lifetimeMs: principal.expiresAt - now() } : {}),
            activityIntervalMs: Math.min(1000, rt.config.session.idleTtlSeconds * 100),
          },
        );
        log.info({ reqId: ctx.id, path: a.path, route: route.name, session: principal?.sessionKey }, 'websocket opened');
      });
      const control = rt.pools
        .get(origin)
        .upgrade({ path: base + a.path + a.query, headers, protocol: 'websocket', timeoutMs: route.timeoutMs }, handshake);
      handshake.control = control;
      conn.cancel = (reason) => {
        control.abort();
        // A decline already on its way to the client cannot be followed by a 401: the socket is cut instead.
        if (handshake.started) socket.destroy();
        else refuse(new GatehouseError('unauthorized', { logDetail: `ended before the backend's 101: ${reason}` }));
      };
      socket.once('close', handshake.onClientClose);
    };
    const admitNow = () => admit(rt, facts, 'GET', url, req.socket.remoteAddress ?? '', (req.socket as TLSSocket).encrypted === true);
    const revocationsBefore = registry.revocations();
    Promise.resolve()
      .then(admitNow)
      .then((a) => {
        ctx.route = a.route;
        ctx.principal = a.principal;
        if (!a.route.websocket) throw new GatehouseError('not_found', { logDetail: 'websocket disabled on this mapping' });
        if (socket.destroyed) return;
        // Stage 9 (policy/admit.ts): the backend's health and circuit, and the mapping's maxStreams, counted until the
        // client socket closes, however that happens.
        let origin = a.route.origin;
        let base = a.route.basePath;
        const g = guardOf(rt, a.route);
        if (!g.free) {
          if (g.enterStream() === FALLBACK) {
            origin = g.fallbackOrigin as string;
            base = g.fallbackBase;
          }
          releaseOnClose(socket, g);
        }
        // One identity cannot hold an unbounded number of sockets (OWASP WebSocket DoS): counted from admission
        // to close, so a burst of simultaneous upgrades is counted too.
        const owner = a.principal ? (a.principal.sessionKey ?? `bearer:${String(a.principal.claims['sub'])}`) : undefined;
        if (owner !== undefined) {
          if (!registry.tryReserve(owner, rt.config.websocketMaxPerIdentity)) {
            throw new GatehouseError('too_many_requests', { logDetail: 'websocket limit per identity reached' });
          }
        }
        const conn = new Connection(a.principal);
        // In the registry from admission on: a session revoked before the backend's 101 ends the handshake too.
        trackUntilClosed(socket, registry, conn, owner);
        let ended: string | undefined;
        conn.cancel = (reason) => {
          ended = reason;
          refuse(new GatehouseError('unauthorized', { logDetail: `ended before the backend's 101: ${reason}` }));
        };
        const start = () => {
          if (ended !== undefined || socket.destroyed) return;
          connectBackend(a, conn, origin, base);
        };
        // A revocation sent while admission was reading the session found no connection to close: ask again
        // (the caches it invalidated make this a store read), now that any later one will find it.
        if (a.principal && registry.revocations() !== revocationsBefore) {
          Promise.resolve()
            .then(admitNow)
            .then((again) => {
              if (!again.principal) throw new GatehouseError('unauthorized', { logDetail: 'identity ended during admission' });
              start();
            })
            .catch(refuse);
        } else {
          start();
        }
      })
      .catch(refuse);
  };
}
