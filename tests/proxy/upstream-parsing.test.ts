import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/observability/logger.ts';
import { identityHeaderLines } from '../../src/proxy/headers.ts';
import type { Route } from '../../src/proxy/routes.ts';
import { ChunkedDecoder, ChunkedError } from '../../src/proxy/upstream/chunked.ts';
import { parseResponseHead, ResponseHeadError } from '../../src/proxy/upstream/response-head.ts';

const head = (lines: string[], headRequest = false) => parseResponseHead(lines.join('\r\n'), headRequest);

describe('response head: framing (RFC 9112 §6.3)', () => {
  it('Content-Length frames the body; names are lowercased and values trimmed', () => {
    const h = head(['HTTP/1.1 200 OK', 'Content-Type:  text/plain ', 'Content-Length: 12']);
    expect(h).toMatchObject({ status: 200, framing: 'length', length: 12, keepAlive: true });
    expect(h.headers).toEqual(['content-type', 'text/plain', 'content-length', '12']);
  });

  it('chunked, until-close and no-body framings', () => {
    expect(head(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked']).framing).toBe('chunked');
    expect(head(['HTTP/1.1 200 OK'])).toMatchObject({ framing: 'close', keepAlive: false });
    for (const status of [204, 304]) expect(head([`HTTP/1.1 ${status} X`, 'Content-Length: 5']).framing).toBe('none');
    expect(head(['HTTP/1.1 200 OK', 'Content-Length: 5'], true).framing).toBe('none');
    expect(head(['HTTP/1.1 200 OK', 'Content-Length: 0']).framing).toBe('none');
  });

  it('keep-alive: not on HTTP/1.0, not after Connection: close; the Keep-Alive hint is read', () => {
    expect(head(['HTTP/1.0 200 OK', 'Content-Length: 1']).keepAlive).toBe(false);
    const closing = head(['HTTP/1.1 200 OK', 'Connection: x-secret, Close', 'Content-Length: 1']);
    expect(closing.keepAlive).toBe(false);
    expect(closing.connectionTokens).toEqual(['x-secret', 'close']);
    expect(head(['HTTP/1.1 200 OK', 'Keep-Alive: timeout=2, max=100', 'Content-Length: 1']).keepAliveHintMs).toBe(2000);
  });

  it('repeated identical Content-Length values are one length', () => {
    expect(head(['HTTP/1.1 200 OK', 'Content-Length: 3', 'Content-Length: 3']).length).toBe(3);
    expect(head(['HTTP/1.1 200 OK', 'Content-Length: 3, 3']).length).toBe(3);
  });

  it.each([
    ['Content-Length with Transfer-Encoding', ['HTTP/1.1 200 OK', 'Content-Length: 3', 'Transfer-Encoding: chunked']],
    ['two different Content-Length values', ['HTTP/1.1 200 OK', 'Content-Length: 1', 'Content-Length: 2']],
    ['a Content-Length list that disagrees', ['HTTP/1.1 200 OK', 'Content-Length: 1, 2']],
    ['a signed Content-Length', ['HTTP/1.1 200 OK', 'Content-Length: +3']],
    ['a huge Content-Length', ['HTTP/1.1 200 OK', 'Content-Length: 99999999999999999999']],
    ['Transfer-Encoding xchunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: xchunked']],
    ['Transfer-Encoding gzip, chunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked']],
    ['two Transfer-Encoding lines', ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']],
    ['a space before the colon', ['HTTP/1.1 200 OK', 'Content-Length : 3']],
    ['an obs-fold continuation line', ['HTTP/1.1 200 OK', 'X-A: 1', ' folded', 'Content-Length: 1']],
    ['a header line without a colon', ['HTTP/1.1 200 OK', 'nonsense']],
    ['a bare LF inside the head', ['HTTP/1.1 200 OK', 'X-A: 1\nContent-Length: 1']],
    ['a NUL in a value', ['HTTP/1.1 200 OK', 'X-A: a\0b']],
    ['HTTP/2 in the status line', ['HTTP/2 200 OK']],
    ['a two-digit status', ['HTTP/1.1 20 OK']],
    ['not HTTP at all', ['SSH-2.0-OpenSSH_9.2']],
  ])('refuses %s', (_label, lines) => {
    expect(() => head(lines)).toThrow(ResponseHeadError);
  });
});

function decodeAll(input: Buffer, pieceSize = input.length): { body: string; end: number; done: boolean } {
  const d = new ChunkedDecoder();
  const out: Buffer[] = [];
  let end = 0;
  for (let i = 0; i < input.length && !d.done; i += pieceSize) {
    const piece = input.subarray(i, i + pieceSize);
    end = i + d.push(piece, 0, (c) => out.push(Buffer.from(c)));
  }
  return { body: Buffer.concat(out).toString('latin1'), end, done: d.done };
}

describe('chunked body decoding', () => {
  const wire = Buffer.from('5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: yes\r\n\r\n', 'latin1');

  it('decodes sizes, extensions and trailers, in one buffer or one byte at a time', () => {
    for (const size of [wire.length, 7, 1]) {
      expect(decodeAll(wire, size)).toEqual({ body: 'helloabcdefghijklmnopqrstuvwxyz', end: wire.length, done: true });
    }
  });

  it('stops at the end of the body and says where, so bytes after it are not taken as body', () => {
    const withExtra = Buffer.concat([Buffer.from('3\r\nabc\r\n0\r\n\r\n'), Buffer.from('HTTP/1.1 200 OK\r\n')]);
    const r = decodeAll(withExtra);
    expect(r).toMatchObject({ body: 'abc', done: true, end: 13 });
  });

  it.each([
    ['a non-hex size', 'g\r\n'],
    ['an empty size', '\r\n'],
    ['a size that overflows', 'fffffffffffffff\r\n'],
    ['data longer than its size', '3\r\nabcd\r\n'],
    ['a bare LF after the size', '3\nabc\r\n'],
    ['a bare LF after the data', '3\r\nabc\n0\r\n\r\n'],
    ['a control character in an extension', '3;a\x01\r\nabc\r\n'],
    ['a bare LF in a trailer', '0\r\nX: 1\n\r\n'],
  ])('refuses %s', (_label, text) => {
    expect(() => decodeAll(Buffer.from(text, 'latin1'))).toThrow(ChunkedError);
  });
});

describe('values Gatehouse writes into the upstream request head', () => {
  // The client writes header values as they are, so nothing Gatehouse adds may carry CR or LF.
  const warnings: unknown[] = [];
  const log = { warn: (o: unknown) => warnings.push(o) } as unknown as Logger;
  const route = { forwardAccessToken: true, identityHeaders: [['x-user-sub', 'sub'], ['x-user-email', 'email']] } as unknown as Route;

  it('an access token or claim with CR/LF is dropped and logged, never written', () => {
    const lines = identityHeaderLines(route, { accessToken: 'abc\r\nx-user-admin: true', claims: { sub: 'u1', email: 'a@b\r\nx-evil: 1' } }, 'req-1', log);
    expect(lines).toEqual(['x-user-sub', 'u1']);
    expect(warnings).toHaveLength(2);
  });

  it('a well-formed token is relayed as a Bearer credential', () => {
    expect(identityHeaderLines(route, { accessToken: 'eyJ.abc-_~+/=', claims: { sub: 'u1' } }, 'req-2', log)).toEqual(['authorization', 'Bearer eyJ.abc-_~+/=', 'x-user-sub', 'u1']);
  });
});
