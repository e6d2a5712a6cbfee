import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { LINGER } from '../../src/errors.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

interface UploadOutcome {
  /** The answer, when one arrived whole (head and Content-Length body). */
  readonly status: number;
  readonly body: string;
  /** A socket error before the answer was whole (ECONNRESET, EPIPE), if any. */
  readonly errorBeforeAnswer: string | undefined;
  readonly sent: number;
  /** When the connection closed, after the answer was whole (ms). */
  readonly closedAfterAnswerMs: number;
}

/**
 * Uploads `size` bytes in 64 KiB writes, one every `gapMs` (about 60 MB/s), while reading: as a browser or curl does, it stops
 * sending once the answer is whole (unless `ignoreAnswer`), then waits for the connection to close.
 */
function upload(
  baseUrl: string,
  head: string,
  size: number,
  options: { gapMs?: number; ignoreAnswer?: boolean } = {},
): Promise<UploadOutcome> {
  const { hostname, port } = new URL(baseUrl);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = Buffer.alloc(0);
    let sent = 0;
    let answer: { status: number; body: string; at: number } | undefined;
    let errorBeforeAnswer: string | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection still open after 15 s: ${data.toString('latin1').slice(0, 200)}`));
    }, 15_000);
    socket.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (!answer && end !== -1 && length && text.length - end - 4 >= Number(length[1])) {
        answer = { status: Number(text.slice(9, 12)), body: text.slice(end + 4, end + 4 + Number(length[1])), at: Date.now() };
        if (!options.ignoreAnswer) socket.end();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!answer) errorBeforeAnswer ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({
        status: answer?.status ?? 0,
        body: answer?.body ?? '',
        errorBeforeAnswer,
        sent,
        closedAfterAnswerMs: answer ? Date.now() - answer.at : -1,
      });
    });
    socket.write(`${head}Content-Length: ${size}\r\n\r\n`);
    const pump = () => {
      if (socket.destroyed || !socket.writable || (answer && !options.ignoreAnswer) || sent >= size) return;
      const n = Math.min(chunk.length, size - sent);
      sent += n;
      // Not waiting for each write to flush: bytes in flight are what a close turns into a reset.
      socket.write(n === chunk.length ? chunk : chunk.subarray(0, n));
      setTimeout(pump, options.gapMs ?? 1);
    };
    pump();
  });
}

/**
 * Issue 15 §4, nginx's lingering_close: an upload answered before its body was read (401 from admission, a 404,
 * a refused request, a backend's early answer) on a connection that then closes used to end in EPIPE or a reset
 * on the client, which lost the answer with it. Gatehouse now reads (and drops) the rest of the body for a
 * bounded time and amount before closing, so the client reads the answer.
 */
describe('lingering close: an early answer to a large upload reaches the client', () => {
  const MiB = 1024 * 1024;
  const stack = useBareProxy({
    backend: async () => {
      // Answers every request at once, reading nothing of its body.
      const requests: string[] = [];
      const server = createServer((req, res) => {
        requests.push(req.url ?? '');
        res.writeHead(413, { 'content-type': 'application/json', 'content-length': '22' });
        res.end('{"error":"too_large"}\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      return {
        requests,
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      };
    },
    routes: (url) => [
      { frontendHost: '*', pathPrefix: '/early', backend: url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/private', backend: url },
    ],
  });
  const head = (target: string, extra = 'Connection: close\r\n') => `POST ${target} HTTP/1.1\r\nHost: ${stack.host}\r\n${extra}`;

  it.each([
    ['401 from admission', '/api/private/upload', 401, 'unauthorized'],
    ['404 from Express', '/nothing/here', 404, 'not_found'],
  ])('%s, Connection: close, 8 MiB: the whole answer, no reset', async (_label, target, status, code) => {
    for (let i = 0; i < 3; i++) {
      const out = await upload(stack.url, head(target), 8 * MiB);
      expect(out.errorBeforeAnswer, `attempt ${i}`).toBeUndefined();
      expectError(out, status, code, `attempt ${i}`);
      expect(out.sent).toBeLessThan(8 * MiB);
    }
  });

  it('a refused request (framing in doubt: the answer closes the connection) still delivers its 400', async () => {
    for (let i = 0; i < 3; i++) {
      const out = await upload(stack.url, head('/api/private/upload', 'Connection: content-length\r\n'), 8 * MiB);
      expect(out.errorBeforeAnswer, `attempt ${i}`).toBeUndefined();
      expectError(out, 400, 'bad_request', `attempt ${i}`);
    }
  });

  it("a backend's early answer, Connection: close: forwarded whole, no reset", async () => {
    for (let i = 0; i < 3; i++) {
      const out = await upload(stack.url, head('/api/early/upload'), 8 * MiB);
      expect(out.errorBeforeAnswer, `attempt ${i}`).toBeUndefined();
      expect(out.status).toBe(413);
      expect(out.body).toBe('{"error":"too_large"}\n');
    }
  });

  it('is bounded: a client that keeps sending after the answer is cut off after LINGER.maxBytes', async () => {
    const out = await upload(stack.url, head('/api/private/upload'), 64 * MiB, { gapMs: 0, ignoreAnswer: true });
    expectError(out, 401, 'unauthorized');
    expect(out.sent).toBeLessThan(64 * MiB);
    expect(out.closedAfterAnswerMs).toBeLessThan(LINGER.maxMs + 1000);
  });
});
