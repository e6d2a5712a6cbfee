import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamPool, type UpstreamPool } from '../../src/proxy/upstream/client.ts';
import { NO_BODY, RequestHeadError, serializeRequestHead, type RequestBody } from '../../src/proxy/upstream/request-head.ts';
import type { ResponseHead } from '../../src/proxy/upstream/response-head.ts';
import { collectUpstream, type UpstreamOutcome } from '../helpers/upstream-call.ts';

/**
 * The upstream writer owns what it writes (issue 10): framing headers come from the body it is given, never
 * from the header list, and no byte a field may not hold reaches the wire, whatever its caller checked.
 */

describe('request head: the writer checks every byte before writing one', () => {
  const write = (headers: string[], body: RequestBody = NO_BODY, method = 'GET', target = '/a') =>
    serializeRequestHead(method, target, 'backend:80', headers, body);

  it('writes Host, then the list, then the framing it derives from the body', () => {
    expect(write(['x-a', '1'])).toBe('GET /a HTTP/1.1\r\nhost: backend:80\r\nx-a: 1\r\n\r\n');
    expect(write([], { kind: 'length', length: 12, stream: new PassThrough() }, 'POST')).toBe(
      'POST /a HTTP/1.1\r\nhost: backend:80\r\ncontent-length: 12\r\n\r\n',
    );
    expect(write([], { kind: 'length', length: 0, stream: null }, 'POST')).toContain('\r\ncontent-length: 0\r\n');
    expect(write([], { kind: 'chunked', stream: new PassThrough() }, 'POST')).toContain('\r\ntransfer-encoding: chunked\r\n');
    expect(serializeRequestHead('GET', '/ws', 'b', [], NO_BODY, 'websocket')).toBe(
      'GET /ws HTTP/1.1\r\nhost: b\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
    );
  });

  it.each([
    ['Content-Length in the list', ['Content-Length', '86']],
    ['Transfer-Encoding in the list', ['transfer-encoding', 'chunked']],
    ['Host in the list', ['HOST', 'evil']],
    ['Connection in the list', ['connection', 'close']],
    ['Upgrade in the list', ['Upgrade', 'h2c']],
    ['CR LF in a value', ['x-a', 'v\r\nx-user-sub: root']],
    ['a bare LF in a value', ['x-a', 'v\nx-user-sub: root']],
    ['a bare CR in a value', ['x-a', 'v\rx']],
    ['NUL in a value', ['x-a', 'v\0']],
    ['a control character in a value', ['x-a', 'v\x1b']],
    ['U+010A in a value (LF once written as latin1)', ['x-a', 'v\u010ax-user-sub: root']],
    ['U+010D in a value (CR once written as latin1)', ['x-a', 'v\u010d']],
    ['a space in a name', ['x a', '1']],
    ['a colon in a name', ['x-a:', '1']],
    ['an empty name', ['', '1']],
    ['CR LF in a name', ['x-a\r\nx-user-sub', 'root']],
    ['a list of odd length', ['x-a']],
  ])('refuses %s', (_label, headers) => {
    expect(() => write(headers)).toThrow(RequestHeadError);
  });

  it.each([
    ['a method with a space', 'GE T', '/a'],
    ['a method with CR LF', 'GET\r\n', '/a'],
    ['an empty method', '', '/a'],
    ['a target with a space', 'GET', '/a HTTP/1.1\r\nx: y'],
    ['a target with CR LF', 'GET', '/a\r\nx-user-sub: root'],
    ['a target with NUL', 'GET', '/a\0'],
    ['a target above a byte', 'GET', '/a\u0120'],
    ['an absolute-form target', 'GET', 'http://evil/a'],
    ['an empty target', 'GET', ''],
  ])('refuses %s', (_label, method, target) => {
    expect(() => write([], NO_BODY, method, target)).toThrow(RequestHeadError);
  });

  it('refuses a length that is not a byte count, or a length without a body', () => {
    for (const length of [-1, 1.5, Number.NaN, 2 ** 60]) {
      expect(() => write([], { kind: 'length', length, stream: new PassThrough() }, 'POST')).toThrow(RequestHeadError);
    }
    expect(() => write([], { kind: 'length', length: 5, stream: null }, 'POST')).toThrow(RequestHeadError);
  });
});

/** A backend that records every byte each connection sent and answers nothing until told to. */
interface Recorder {
  readonly origin: string;
  readonly conns: Array<{ socket: Socket; bytes: () => string; closed: boolean }>;
  close(): Promise<void>;
}

async function startRecorder(onData?: (socket: Socket, all: string) => void): Promise<Recorder> {
  const conns: Recorder['conns'] = [];
  const server: Server = createServer((socket) => {
    let data = '';
    const entry = { socket, bytes: () => data, closed: false };
    conns.push(entry);
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      onData?.(socket, data);
    });
    socket.on('error', () => {});
    socket.on('close', () => (entry.closed = true));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    conns,
    async close() {
      for (const c of conns) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function call(pool: UpstreamPool, method: string, body: RequestBody, headers: string[] = [], path = '/up'): Promise<UpstreamOutcome> {
  return collectUpstream(pool, { method, path, headers, body, timeoutMs: 3000 });
}

const until = async (check: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('request body: never more than its declared length, never a framing the writer did not choose', () => {
  let recorder: Recorder;
  let pool: UpstreamPool;
  beforeAll(async () => {
    // Answers once a whole head and a Content-Length body (or a chunked body's last-chunk) has arrived.
    recorder = await startRecorder((socket, all) => {
      const end = all.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/\r\ncontent-length: (\d+)/.exec(all.slice(0, end))?.[1] ?? -1);
      const complete = length >= 0 ? all.length - end - 4 >= length : all.endsWith('\r\n0\r\n\r\n');
      if (complete && !all.startsWith('POST /hold ') && !socket.destroyed && !(socket as Socket & { answered?: boolean }).answered) {
        (socket as Socket & { answered?: boolean }).answered = true;
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  afterEach(() => pool?.close());
  afterAll(() => recorder.close());

  it('a body longer than its Content-Length: the extra bytes are never written, the request fails and its connection closes', async () => {
    pool = createUpstreamPool(recorder.origin);
    const before = recorder.conns.length;
    // A caller that got its length wrong: 5 declared, 5 bytes, and then a request glued after them.
    const stream = new PassThrough();
    const pending = call(pool, 'POST', { kind: 'length', length: 5, stream }, [], '/hold');
    stream.write(Buffer.from('hello'));
    await until(() => recorder.conns[before]?.bytes().endsWith('\r\n\r\nhello') === true);
    stream.write(Buffer.from('GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n'));
    // The backend holds its answer: only the writer's own guard stands between those bytes and the wire.
    expect((await pending).error?.code).toBe('UPSTREAM_INVALID_REQUEST');
    await until(() => recorder.conns[before]?.closed === true);
    expect(recorder.conns[before]?.bytes()).not.toContain('/smuggled');
  });

  it('a body that ends short of its Content-Length fails the request and closes the connection (the backend still waits for the rest)', async () => {
    pool = createUpstreamPool(recorder.origin);
    const before = recorder.conns.length;
    const out = await call(pool, 'POST', { kind: 'length', length: 10, stream: Readable.from([Buffer.from('short')]) });
    expect(out.error?.code).toBe('UPSTREAM_INVALID_REQUEST');
    await until(() => recorder.conns[before]?.closed === true);
  });

  it('an empty chunk from the body stream is not written as the last-chunk', async () => {
    pool = createUpstreamPool(recorder.origin);
    const before = recorder.conns.length;
    const stream = new PassThrough();
    const pending = call(pool, 'POST', { kind: 'chunked', stream });
    stream.write(Buffer.from('ab'));
    stream.write(Buffer.alloc(0));
    stream.end(Buffer.from('cd'));
    expect(await pending).toMatchObject({ status: 200, body: 'ok' });
    const bytes = recorder.conns[before]?.bytes() ?? '';
    expect(bytes.slice(bytes.indexOf('\r\n\r\n') + 4)).toBe('2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
  });

  it('a request the writer refuses is answered UPSTREAM_INVALID_REQUEST, asynchronously, and nothing is sent', async () => {
    pool = createUpstreamPool(recorder.origin);
    const before = recorder.conns.length;
    let sync = true;
    const pending = call(pool, 'GET', NO_BODY, ['content-length', '86']).then((o) => ({ o, sync }));
    sync = false;
    const { o, sync: wasSync } = await pending;
    expect(wasSync).toBe(false);
    expect(o.error?.code).toBe('UPSTREAM_INVALID_REQUEST');
    await new Promise((r) => setTimeout(r, 30));
    expect(recorder.conns.length).toBe(before);
  });
});

describe('upgrade: a 101 hands the connection over, anything else is a response on a connection never reused', () => {
  let backend: Recorder;
  beforeAll(async () => {
    backend = await startRecorder((socket, all) => {
      if (!all.endsWith('\r\n\r\n') || (socket as Socket & { answered?: boolean }).answered) return;
      (socket as Socket & { answered?: boolean }).answered = true;
      if (all.startsWith('GET /decline ')) socket.write('HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\n\r\nnope');
      else socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nfirst-bytes');
    });
  });
  afterAll(() => backend.close());

  it('writes Connection and Upgrade itself, then hands over the socket with the bytes that came after the 101', async () => {
    const pool = createUpstreamPool(backend.origin);
    const before = backend.conns.length;
    const got = await new Promise<{ head: ResponseHead; socket: Socket; rest: Buffer }>((resolve, reject) => {
      pool.upgrade(
        { path: '/ws', headers: ['sec-websocket-key', 'abc'], protocol: 'websocket', timeoutMs: 2000 },
        {
          onUpgrade: (head, socket, rest) => resolve({ head, socket, rest }),
          onResponseStart: () => reject(new Error('not upgraded')),
          onResponseData: () => true,
          onResponseEnd: () => reject(new Error('not upgraded')),
          onResponseError: reject,
        },
      );
    });
    expect(got.head.status).toBe(101);
    expect(got.rest.toString()).toBe('first-bytes');
    expect(backend.conns[before]?.bytes()).toBe(
      `GET /ws HTTP/1.1\r\nhost: ${new URL(backend.origin).host}\r\nsec-websocket-key: abc\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n`,
    );
    // The tunnel is the caller's: the pool is done with it, and closing the pool leaves it open.
    await pool.close();
    expect(got.socket.destroyed).toBe(false);
    got.socket.destroy();
  });

  it('a declined upgrade is relayed as a response, and its connection is closed afterwards', async () => {
    const pool = createUpstreamPool(backend.origin);
    const before = backend.conns.length;
    const out = await new Promise<UpstreamOutcome>((resolve) => {
      let status = 0;
      let body = '';
      pool.upgrade(
        { path: '/decline', headers: [], protocol: 'websocket', timeoutMs: 2000 },
        {
          onUpgrade: (_h, s) => {
            s.destroy();
            resolve({ status: 101 });
          },
          onResponseStart: (head) => {
            status = head.status;
          },
          onResponseData: (c) => {
            body += c.toString();
            return true;
          },
          onResponseEnd: () => resolve({ status, body }),
          onResponseError: (error) => resolve({ error }),
        },
      );
    });
    expect(out).toEqual({ status: 426, body: 'nope' });
    await until(() => backend.conns[before]?.closed === true);
    await pool.close();
  });
});
