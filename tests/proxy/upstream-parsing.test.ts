import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/observability/logger.ts';
import { identityHeaderLines } from '../../src/proxy/headers.ts';
import type { Route } from '../../src/policy/route-table.ts';
import { ChunkedDecoder, ChunkedError } from '../../src/proxy/upstream/chunked.ts';
import { listTokens } from '../../src/proxy/upstream/grammar.ts';
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

  it('Content-Length with OWS and leading zeros, Transfer-Encoding in any case with SP and HTAB before it', () => {
    expect(head(['HTTP/1.1 200 OK', 'Content-Length: \t003 ']).length).toBe(3);
    expect(head(['HTTP/1.1 200 OK', 'Transfer-Encoding: \tChunked  ']).framing).toBe('chunked');
  });

  it('list members are stripped of SP and HTAB only (RFC 9110 §5.6.3), empty ones skipped', () => {
    expect(listTokens(' Close ,\tx-a,, ')).toEqual(['close', 'x-a']);
    expect(listTokens('\xA0close')).toEqual(['\xA0close']);
  });

  it.each([
    ['Content-Length with Transfer-Encoding', ['HTTP/1.1 200 OK', 'Content-Length: 3', 'Transfer-Encoding: chunked']],
    ['two different Content-Length values', ['HTTP/1.1 200 OK', 'Content-Length: 1', 'Content-Length: 2']],
    ['a Content-Length list that disagrees', ['HTTP/1.1 200 OK', 'Content-Length: 1, 2']],
    // RFC 9110 §8.6 would allow folding these into one length; llhttp refuses them, so Gatehouse does too.
    ['two identical Content-Length lines', ['HTTP/1.1 200 OK', 'Content-Length: 3', 'Content-Length: 3']],
    ['a Content-Length list that agrees', ['HTTP/1.1 200 OK', 'Content-Length: 3, 3']],
    ['an empty Content-Length', ['HTTP/1.1 200 OK', 'Content-Length: ']],
    ['a signed Content-Length', ['HTTP/1.1 200 OK', 'Content-Length: +3']],
    ['a huge Content-Length', ['HTTP/1.1 200 OK', 'Content-Length: 99999999999999999999']],
    ['Transfer-Encoding xchunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: xchunked']],
    ['Transfer-Encoding gzip, chunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked']],
    ['two Transfer-Encoding lines', ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']],
    // llhttp reads each of these to the close instead of decoding chunks (or refuses it): never decode them.
    ['Transfer-Encoding chunked<NBSP>', ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked\xA0']],
    ['Transfer-Encoding <NBSP>chunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: \xA0chunked']],
    ['Transfer-Encoding chunked,, (empty list members)', ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked,,']],
    ['Transfer-Encoding ,chunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: ,chunked']],
    ['Transfer-Encoding chunked<HTAB>', ['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked\t']],
    ['an empty Transfer-Encoding', ['HTTP/1.1 200 OK', 'Transfer-Encoding: ']],
    ['an empty Transfer-Encoding line beside chunked', ['HTTP/1.1 200 OK', 'Transfer-Encoding: ', 'Transfer-Encoding: chunked']],
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

  it.each([
    ['sizes with leading zeros, in either case', '0005\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n', 'hello0123456789'],
    ['a bare extension name, several extensions', '5;a;b=c;d\r\nhello\r\n0;last\r\n\r\n', 'hello'],
    ['a quoted extension value with ; = and quoted-pairs', '5;a="x; y=\\"z\\" \\\\"\r\nhello\r\n0\r\n\r\n', 'hello'],
    ['obs-text in a quoted extension', '5;a="caf\xE9"\r\nhello\r\n0\r\n\r\n', 'hello'],
    ['trailers with OWS, an empty value and obs-text', '5\r\nhello\r\n0\r\nX-A: \t1 \t\r\nX-Empty:\r\nX-B:caf\xE9\r\n\r\n', 'hello'],
    [
      'trailers whose names only start like a framing field',
      '5\r\nhello\r\n0\r\nContent-Lengths: 1\r\nTransfer-Encodin: x\r\nContent-Length-X: 2\r\n\r\n',
      'hello',
    ],
  ])('accepts %s', (_label, text, body) => {
    const input = Buffer.from(text, 'latin1');
    for (const size of [input.length, 1]) expect(decodeAll(input, size)).toEqual({ body, end: input.length, done: true });
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
    // Issue 10: sizes and extensions llhttp refuses (RFC 9112 §7.1.1 allows no whitespace after the size).
    ['a space and a digit after the size ("5 6")', '5 6\r\nhello\r\n'],
    ['a space after the size ("5 ")', '5 \r\nhello\r\n'],
    ['an HTAB and junk after the size ("5\tzz")', '5\tzz\r\nhello\r\n'],
    ['an empty extension ("5;")', '5;\r\nhello\r\n'],
    ['an unterminated quoted extension that would run across CRLF', '5;a="x\r\nhello\r\n'],
    ['a space before ;', '5 ;a=b\r\nhello\r\n'],
    ['a space after ;', '5; a=b\r\nhello\r\n'],
    ['spaces around =', '5;a = b\r\nhello\r\n'],
    ['an extension without a name', '5;=b\r\nhello\r\n'],
    ['an extension with an empty value', '5;a=\r\nhello\r\n'],
    ['bytes after a quoted extension value', '5;a="b"c\r\nhello\r\n'],
    ['a size prefixed 0x', '0x5\r\nhello\r\n'],
    ['a signed size', '+5\r\nhello\r\n'],
    // Trailers are field lines (RFC 9112 §7.1.2, §5): a name, a colon, a value; no obs-fold (§5.2).
    ['a trailer line without a colon', '0\r\nnocolon\r\n\r\n'],
    ['a folded trailer line', '0\r\nX-T: a\r\n b\r\n\r\n'],
    ["a space before a trailer's colon", '0\r\nX-T : a\r\n\r\n'],
    ['a trailer with an empty name', '0\r\n: a\r\n\r\n'],
    ['a NUL in a trailer value', '0\r\nX-T: a\0b\r\n\r\n'],
    ['a Content-Length trailer', '0\r\ncontent-LENGTH: 5\r\n\r\n'],
    ['a Transfer-Encoding trailer', '0\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ])('refuses %s', (_label, text) => {
    expect(() => decodeAll(Buffer.from(text, 'latin1'))).toThrow(ChunkedError);
  });
});

describe('values Gatehouse writes into the upstream request head', () => {
  // The client writes header values as they are, so nothing Gatehouse adds may carry CR or LF.
  const warnings: unknown[] = [];
  const log = { warn: (o: unknown) => warnings.push(o) } as unknown as Logger;
  const route = {
    forwardAccessToken: true,
    identityHeaders: [
      ['x-user-sub', 'sub'],
      ['x-user-email', 'email'],
    ],
  } as unknown as Route;

  it('an access token or claim with CR/LF is dropped and logged, never written', () => {
    const lines = identityHeaderLines(
      route,
      { accessToken: 'abc\r\nx-user-admin: true', claims: { sub: 'u1', email: 'a@b\r\nx-evil: 1', email_verified: true } },
      'req-1',
      log,
    );
    expect(lines).toEqual(['x-user-sub', 'u1']);
    expect(warnings).toHaveLength(2);
  });

  it('a well-formed token is relayed as a Bearer credential', () => {
    expect(identityHeaderLines(route, { accessToken: 'eyJ.abc-_~+/=', claims: { sub: 'u1' } }, 'req-2', log)).toEqual([
      'authorization',
      'Bearer eyJ.abc-_~+/=',
      'x-user-sub',
      'u1',
    ]);
  });
});
