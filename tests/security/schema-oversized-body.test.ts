import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

const MiB = 1024 * 1024;

/**
 * security-cases 110 (SCH-SIZE): a 2 MiB JSON body against the default 1 MiB limit is refused with 413 before it is
 * buffered whole (a declared length at once, a chunked one as soon as it passes the limit), and a compressed body
 * is refused outright (415): the limit must bound what the backend inflates and parses, and Gatehouse does not inflate.
 */
describe('an oversized checked body', () => {
  const proxy = useBareProxy({ config: 'schemas:\n  - method: POST\n    path: /upload\n    body: { type: object }\n' });

  /** Writes the head, then the body in pieces; resolves with the answer and how much was written by then. */
  const upload = (head: string, pieces: Buffer[]) =>
    new Promise<{ status: number; text: string; writtenAtAnswer: number }>((resolve, reject) => {
      const { hostname, port } = new URL(proxy.url);
      const socket = connect(Number(port), hostname);
      let written = 0;
      let writtenAtAnswer = -1;
      let data = '';
      let i = 0;
      // One piece every 5 ms: loopback buffers would otherwise swallow the whole body before any answer could come.
      const pump = () => {
        if (i >= pieces.length || writtenAtAnswer !== -1 || socket.destroyed) return;
        const piece = pieces[i++]!;
        written += piece.length;
        socket.write(piece);
        setTimeout(pump, 5);
      };
      socket.on('data', (c: Buffer) => {
        if (writtenAtAnswer === -1) writtenAtAnswer = written;
        data += c.toString('latin1');
        const end = data.indexOf('\r\n\r\n');
        const length = /content-length: (\d+)/i.exec(data);
        if (end !== -1 && length && data.length >= end + 4 + Number(length[1])) {
          socket.destroy();
          resolve({ status: Number(data.slice(9, 12)), text: data.slice(end + 4), writtenAtAnswer });
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => reject(new Error(`closed without a whole answer: ${data.slice(0, 200)}`)));
      socket.write(head);
      pump();
    });

  it('a declared 2 MiB Content-Length → 413 payload_too_large before a body byte is sent', async () => {
    const res = await upload(
      `POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${2 * MiB}\r\n\r\n`,
      [],
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text)['error']).toBe('payload_too_large');
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('a chunked 2 MiB body → 413 while the client is still sending (never buffered whole)', async () => {
    const piece = Buffer.from(`10000\r\n${' '.repeat(0x10000)}\r\n`);
    const pieces = Array.from({ length: 32 }, () => piece);
    pieces.push(Buffer.from('0\r\n\r\n'));
    const res = await upload(
      'POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      pieces,
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text)['error']).toBe('payload_too_large');
    // The answer came while at most the limit, plus what socket buffers hold, had been written.
    expect(res.writtenAtAnswer).toBeLessThan(1.5 * MiB);
    expect(proxy.backend.requests).toHaveLength(0);
  });

  it('exactly the limit passes; Content-Encoding: gzip (a 1 KiB bomb inflating to 1 GiB would fit any limit) → 415', async () => {
    const fits = `{"a":"${'x'.repeat(MiB - 8)}"}`;
    expect(Buffer.byteLength(fits)).toBe(MiB);
    const ok = await send(proxy.url, { method: 'POST', path: '/api/upload', headers: ['Content-Type', 'application/json'], body: fits });
    expect(ok.status).toBe(200);
    const over = await send(proxy.url, {
      method: 'POST',
      path: '/api/upload',
      headers: ['Content-Type', 'application/json'],
      body: `${fits} `,
    });
    expectError(over, 413, 'payload_too_large');
    const bomb = gzipSync(Buffer.from(`{"a":"${'x'.repeat(4 * MiB)}"}`));
    const res = await send(proxy.url, {
      method: 'POST',
      path: '/api/upload',
      headers: ['Content-Type', 'application/json', 'Content-Encoding', 'gzip'],
      body: bomb,
    });
    expectError(res, 415, 'unsupported_media_type');
    expect(proxy.backend.requests).toHaveLength(1);
  });
});
