import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { GatehouseError, refuseUpgrade } from '../errors.ts';
import { requestIdFrom, type Logger } from '../observability/logger.ts';
import type { IdentityResolver } from '../auth/identity.ts';
import { admit, upstreamCookie } from './admit.ts';
import { buildUpstreamHeaders, filterResponseHeaders, flattenHeaders, identityHeaderLines, scanHeaders } from './headers.ts';
import type { Runtime } from './runtime.ts';
import { closeFrame, createFrameTracker } from './ws-frames.ts';

/** A live proxied WebSocket; close() ends it with a close frame at the next frame boundary. */
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
}

export function createWsRegistry(): WsRegistry {
  const all = new Set<WsConnection>();
  const bySession = new Map<string, Set<WsConnection>>();
  const reserved = new Map<string, number>();
  return {
    closeWhere(match, code, reason) {
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
  };
}

/**
 * The head of a declined upgrade. node:http hands us the body already de-chunked, so framing and hop-by-hop
 * headers are dropped and the body ends with the connection: relaying `Transfer-Encoding: chunked` over
 * decoded bytes would hand the client a response it cannot parse.
 */
function declinedHead(res: IncomingMessage, ownCookies: readonly string[]): string {
  let out = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
  const backend = flattenHeaders(res.headers);
  const headers = filterResponseHeaders(backend.headers, backend.connectionTokens, [], ownCookies);
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${out}connection: close\r\n\r\n`;
}

/** The backend's 101 as it is (Upgrade and Connection must pass here), minus any Set-Cookie for Gatehouse's own cookies. */
function statusLine(res: IncomingMessage, ownCookies: readonly string[]): string {
  let out = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
  const own = filterResponseHeaders(flattenHeaders({ 'set-cookie': res.headers['set-cookie'] }).headers, [], [], ownCookies);
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    if ((res.rawHeaders[i] as string).toLowerCase() === 'set-cookie' && !own.includes(res.rawHeaders[i + 1] as string)) continue;
    out += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
  }
  return `${out}\r\n`;
}

/**
 * WebSocket upgrades on /api/*: the same admission as HTTP (host, path, mapping, session, auth policy),
 * plus the Origin check against cross-site WebSocket hijacking. After the backend's 101, bytes are relayed
 * unchanged (subprotocols, binary frames, ping/pong, close codes), with backpressure from socket pipes.
 */
export function createUpgradeHandler(deps: { runtime: () => Runtime; identity: IdentityResolver; log: Logger; registry: WsRegistry; now?: () => number }) {
  const now = deps.now ?? Date.now;
  const { identity, log, registry } = deps;
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const rt = deps.runtime();
    const facts = scanHeaders(req.rawHeaders);
    const reqId = requestIdFrom(facts.requestId);
    const url = req.url ?? '/';
    socket.on('error', () => socket.destroy());
    const refuse = (err: unknown) => {
      const known = err instanceof GatehouseError ? err : new GatehouseError('internal_error', { cause: err });
      log.info({ reqId, path: url.split('?', 1)[0], code: known.code, detail: known.logDetail }, 'websocket refused');
      if (known.status >= 500) log.error({ reqId, err: known.cause ?? known }, 'websocket error');
      refuseUpgrade(socket, known, reqId);
    };
    if (!/^\/api(\/|\?|$)/.test(url)) return refuse(new GatehouseError('not_found'));
    // Only real WebSocket upgrades are tunnelled (no h2c or other protocols: upgrade smuggling).
    if (req.httpVersion !== '1.1' || req.method !== 'GET' || facts.upgrade?.toLowerCase() !== 'websocket') {
      return refuse(new GatehouseError('bad_request', { logDetail: 'not a WebSocket upgrade' }));
    }
    if (facts.origin !== undefined && !rt.origins.isAllowed(facts.origin)) {
      return refuse(new GatehouseError('origin_not_allowed', { logDetail: `origin ${facts.origin.slice(0, 100)}` }));
    }
    Promise.resolve().then(() => admit(rt, identity, facts, 'GET', url, req.socket.remoteAddress ?? '', (req.socket as TLSSocket).encrypted === true)).then(
      (a) => {
        if (!a.route.websocket) throw new GatehouseError('not_found', { logDetail: 'websocket disabled on this mapping' });
        if (socket.destroyed) return;
        // One identity cannot hold an unbounded number of sockets (OWASP WebSocket DoS): counted from admission
        // to close, so a burst of simultaneous upgrades is counted too.
        const owner = a.principal ? a.principal.sessionKey ?? `bearer:${String(a.principal.claims['sub'])}` : undefined;
        if (owner !== undefined) {
          if (!registry.tryReserve(owner, rt.config.websocketMaxPerIdentity)) {
            throw new GatehouseError('too_many_requests', { logDetail: 'websocket limit per identity reached' });
          }
          socket.once('close', () => registry.release(owner));
        }
        const lines = a.principal ? identityHeaderLines(a.route, a.principal, reqId, log) : undefined;
        const headers = buildUpstreamHeaders(facts, a.route, lines, a.client, a.hostHeader, reqId, upstreamCookie(rt, facts.cookie));
        headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
        const backend = new URL(a.route.origin);
        const send = backend.protocol === 'https:' ? httpsRequest : httpRequest;
        const upstream = send({
          protocol: backend.protocol,
          hostname: backend.hostname.replace(/^\[|\]$/g, ''),
          port: backend.port || (backend.protocol === 'https:' ? 443 : 80),
          method: 'GET',
          path: a.route.basePath + a.path + a.query,
          headers,
          agent: false,
          timeout: a.route.timeoutMs,
        });
        const onClientGone = () => upstream.destroy();
        socket.once('close', onClientGone);
        upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upgrade timed out'), { code: 'ETIMEDOUT' })));
        upstream.on('error', (err: Error & { code?: string }) => {
          if (socket.destroyed) return;
          refuse(new GatehouseError(err.code === 'ETIMEDOUT' ? 'gateway_timeout' : 'bad_gateway', { cause: err, logDetail: err.code ?? err.message }));
        });
        upstream.on('response', (res) => {
          // The backend declined the upgrade: relay its answer, then close.
          socket.write(declinedHead(res, rt.ownCookies));
          res.on('error', () => socket.destroy());
          res.pipe(socket);
        });
        upstream.on('upgrade', (res, backendSocket: Duplex, backendHead: Buffer) => {
          socket.off('close', onClientGone);
          upstream.setTimeout(0);
          if (socket.destroyed) {
            backendSocket.destroy();
            return;
          }
          socket.write(statusLine(res, rt.ownCookies));
          const tracker = createFrameTracker();
          let closing: { code: number; reason: string } | undefined;
          const conn: WsConnection = {
            sessionKey: a.principal?.sessionKey,
            ...(a.principal ? { sub: String(a.principal.claims['sub']), issuedAt: a.principal.issuedAt } : {}),
            ...(a.principal?.tokenJti ? { tokenJti: a.principal.tokenJti } : {}),
            close(code, reason) {
              if (closing) return;
              closing = { code, reason };
              if (tracker.atBoundary()) finishClose();
            },
          };
          const finishClose = () => {
            if (!closing) return;
            backendSocket.destroy();
            socket.end(closeFrame(closing.code, closing.reason));
            setTimeout(() => socket.destroy(), 1000).unref();
          };
          const relay = (chunk: Buffer) => {
            if (closing) {
              const n = tracker.advance(chunk, true);
              if (n > 0) socket.write(chunk.subarray(0, n));
              if (tracker.atBoundary()) finishClose();
              return;
            }
            tracker.advance(chunk, false);
            if (!socket.write(chunk)) backendSocket.pause();
          };
          socket.on('drain', () => backendSocket.resume());
          backendSocket.on('data', relay);
          if (backendHead.length > 0) relay(backendHead);
          if (head.length > 0) backendSocket.write(head);
          socket.pipe(backendSocket);
          const cleanup = () => {
            registry.remove(conn);
            socket.destroy();
            backendSocket.destroy();
          };
          backendSocket.on('end', () => socket.end());
          backendSocket.on('close', cleanup);
          backendSocket.on('error', cleanup);
          socket.on('close', cleanup);
          registry.add(conn);
          // An identity that ends (session absolute lifetime, bearer token exp) takes its WebSockets with it.
          const lifetime = a.principal ? Math.min(a.principal.expiresAt - now(), 2 ** 31 - 1) : undefined;
          const expiry = lifetime !== undefined ? setTimeout(() => conn.close(1008, 'session expired'), Math.max(0, lifetime)) : undefined;
          expiry?.unref();
          socket.once('close', () => clearTimeout(expiry));
          log.info({ reqId, path: a.path, route: a.route.name, session: a.principal?.sessionKey }, 'websocket opened');
        });
        upstream.end();
      },
    ).catch(refuse);
  };
}
