import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

/**
 * WebSocket peers that speak raw frames, for what the `ws` library refuses to send (illegal frames) or hides
 * (exact bytes on the wire, a socket that stops reading). RFC 6455 §4 handshake by hand, §5.2 framing by hand.
 */

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §4.2.2: base64(sha1(key + GUID)). */
export const acceptFor = (key: string): string =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface FrameSpec {
  readonly opcode: number;
  readonly payload?: Buffer | string;
  /** Default true. */
  readonly fin?: boolean;
  /** RSV bits as they sit in the first byte: 0x40 RSV1, 0x20 RSV2, 0x10 RSV3. */
  readonly rsv?: number;
  readonly mask?: boolean;
  /** A 64-bit length written instead of the payload's; no payload follows. */
  readonly declaredLength?: bigint;
}

/** One frame exactly as specified, legal or not. */
export function frame(spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload) : (spec.payload ?? Buffer.alloc(0));
  const size = spec.declaredLength !== undefined ? 8 : payload.length < 126 ? 0 : payload.length <= 0xffff ? 2 : 8;
  const head = Buffer.alloc(2 + size + (spec.mask ? 4 : 0));
  head[0] = (spec.fin === false ? 0 : 0x80) | (spec.rsv ?? 0) | spec.opcode;
  head[1] = (spec.mask ? 0x80 : 0) | (size === 0 ? payload.length : size === 2 ? 126 : 127);
  if (size === 2) head.writeUInt16BE(payload.length, 2);
  if (size === 8) head.writeBigUInt64BE(spec.declaredLength ?? BigInt(payload.length), 2);
  if (spec.declaredLength !== undefined) return spec.mask ? Buffer.concat([head.subarray(0, 10), randomBytes(4)]) : head;
  if (!spec.mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + size);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, body]);
}

/** A masked client frame (text payloads as strings). */
export const clientFrame = (opcode: number, payload: Buffer | string = '', extra: Omit<FrameSpec, 'opcode' | 'payload'> = {}): Buffer =>
  frame({ opcode, payload, mask: true, ...extra });

export interface ParsedFrame {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  /** Unmasked. */
  readonly payload: Buffer;
}

/** Complete frames at the start of `bytes` (a trailing partial frame is left out). */
export function parseFrames(bytes: Buffer): ParsedFrame[] {
  const out: ParsedFrame[] = [];
  let i = 0;
  while (bytes.length - i >= 2) {
    const b0 = bytes[i] as number;
    const b1 = bytes[i + 1] as number;
    const len7 = b1 & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const masked = (b1 & 0x80) !== 0;
    const headLen = 2 + ext + (masked ? 4 : 0);
    if (bytes.length - i < headLen) break;
    const length = len7 === 126 ? bytes.readUInt16BE(i + 2) : len7 === 127 ? Number(bytes.readBigUInt64BE(i + 2)) : len7;
    if (bytes.length - i - headLen < length) break;
    const payload = Buffer.from(bytes.subarray(i + headLen, i + headLen + length));
    if (masked) {
      const key = bytes.subarray(i + 2 + ext, i + headLen);
      for (let j = 0; j < payload.length; j++) payload[j] = (payload[j] as number) ^ (key[j & 3] as number);
    }
    out.push({ fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, masked, payload });
    i += headLen + length;
  }
  return out;
}

/** The status code of a close frame, or undefined for anything else. */
export const closeCodeOf = (f: ParsedFrame | undefined): number | undefined =>
  f?.opcode === 0x8 && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined;

/** One side of a raw WebSocket: everything it received after the handshake, and when its connection ended. */
export class RawPeer {
  readonly socket: Socket;
  /** When the peer saw the other side end or reset the connection (ms since epoch). */
  closedAt: number | undefined;
  readonly closed: Promise<void>;
  private readonly chunks: Buffer[] = [];

  constructor(socket: Socket, initial: Buffer) {
    this.socket = socket;
    if (initial.length > 0) this.chunks.push(initial);
    socket.on('data', (c: Buffer) => this.chunks.push(c));
    // Writes after the other side went away fail (EPIPE/ECONNRESET): that is the ending being observed.
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.closedAt ??= Date.now();
        socket.destroy();
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  frames(): ParsedFrame[] {
    return parseFrames(this.bytes());
  }

  /** Text payloads of the complete frames received so far. */
  texts(): string[] {
    return this.frames()
      .filter((f) => f.opcode === 0x1)
      .map((f) => f.payload.toString());
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  async waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(5);
    }
  }

  /** Resolves true once the connection ended, false after `timeoutMs`. */
  endsWithin(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs).then(() => false)]);
  }
}

/**
 * A client that performs the opening handshake by hand through Gatehouse and then speaks raw frames.
 * Rejects unless the answer is a 101.
 */
export function openRawWs(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<RawPeer> {
  const { hostname, port, host } = new URL(baseUrl);
  const key = randomBytes(16).toString('base64');
  let request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no handshake answer for ${path}`));
    }, 5000);
    const onData = (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', reject);
      const head = data.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101 ') || !head.toLowerCase().includes(`\r\nsec-websocket-accept: ${acceptFor(key).toLowerCase()}`)) {
        socket.destroy();
        return reject(new Error(`handshake refused: ${head}`));
      }
      resolve(new RawPeer(socket, data.subarray(end + 4)));
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write(`${request}\r\n`);
  });
}

export interface RawWsBackend {
  readonly url: string;
  /** Backend-side peers, in connection order. */
  readonly peers: RawPeer[];
  waitForPeer(index: number, timeoutMs?: number): Promise<RawPeer>;
  close(): Promise<void>;
}

/**
 * A backend that completes the handshake by hand and then lets the test write any bytes. It accepts
 * `permessage-deflate` when offered (answering with it in the 101) without ever inflating anything.
 */
export async function startRawWsBackend(): Promise<RawWsBackend> {
  const peers: RawPeer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const deflate = /permessage-deflate/.test(String(req.headers['sec-websocket-extensions'] ?? ''));
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n${deflate ? 'Sec-WebSocket-Extensions: permessage-deflate\r\n' : ''}\r\n`,
    );
    peers.push(new RawPeer(socket, head));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    peers,
    async waitForPeer(index, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (peers[index] === undefined) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for backend peer ${index}`);
        await sleep(5);
      }
      return peers[index];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
