import { request, type IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder, ChunkedError } from '../../src/proxy/upstream/chunked.ts';
import { parseResponseHead, ResponseHeadError, type ResponseHead } from '../../src/proxy/upstream/response-head.ts';

/**
 * Issue 10: Gatehouse's response parser is never more lenient than node:http's (llhttp). Every response
 * Gatehouse accepts, llhttp fed the same bytes accepts too, with the same status, the same body bytes and
 * the same end of message; Gatehouse may refuse more. Two parts: a table of known cases, each row stating
 * both verdicts, and a property over generated hostile responses (FUZZ_RUNS, FUZZ_SEED to replay).
 */

type Method = 'GET' | 'HEAD';

/** What one side made of the bytes: a complete final response, or a refusal. `end` is where the message ended. */
type Outcome =
  | { readonly ok: true; readonly status: number; readonly body: string; readonly end: number | 'eof' }
  | { readonly ok: false; readonly why: string };

// --- Gatehouse: the bytes through parseResponseHead and ChunkedDecoder as src/proxy/upstream/client.ts feeds them ---

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** client.ts's default maxHeadBytes. */
const MAX_HEAD = 16384;

function hasBareLf(buf: Buffer, from: number): boolean {
  for (let lf = buf.indexOf(10, from); lf !== -1; lf = buf.indexOf(10, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 13) return true;
  }
  return false;
}

/** Offsets where the byte stream is cut into the pieces the socket delivers. */
function pieces(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) out.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return out;
}

function refusedBy(err: unknown): Outcome {
  if (err instanceof ResponseHeadError || err instanceof ChunkedError) return { ok: false, why: err.message };
  throw err;
}

/**
 * The response-reading half of client.ts's Exchange (onData, readBody, onEnd), minus the sockets: head up to
 * CRLF CRLF (bare LF and size checked while it is incomplete), 1xx skipped, 101 refused, then the body by its
 * framing, then the connection's end.
 */
function viaGatehouse(bytes: Buffer, method: Method, cuts: readonly number[]): Outcome {
  let headBuf: Buffer | null = null;
  let head: ResponseHead | undefined;
  let remaining = 0;
  const decoder = new ChunkedDecoder();
  const body: Buffer[] = [];
  const keep = (chunk: Buffer) => body.push(chunk);
  const done = (end: number | 'eof'): Outcome => ({
    ok: true,
    status: (head as ResponseHead).status,
    body: Buffer.concat(body).toString('latin1'),
    end,
  });
  let offset = 0;
  for (const piece of pieces(bytes, cuts)) {
    let buf = piece;
    let base = offset;
    offset += piece.length;
    let i = 0;
    if (head === undefined) {
      let searchFrom = 0;
      if (headBuf) {
        searchFrom = Math.max(0, headBuf.length - 3);
        base -= headBuf.length;
        buf = Buffer.concat([headBuf, piece]);
        headBuf = null;
      }
      for (;;) {
        const end = buf.indexOf(CRLFCRLF, Math.max(i, searchFrom));
        if (end === -1 || end - i > MAX_HEAD) {
          if (buf.length - i > MAX_HEAD) return { ok: false, why: 'response head too large' };
          if (hasBareLf(buf, Math.max(i, searchFrom))) return { ok: false, why: 'bare LF in the response head' };
          headBuf = buf.subarray(i);
          break;
        }
        let parsed: ResponseHead;
        try {
          parsed = parseResponseHead(buf.toString('latin1', i, end), method === 'HEAD');
        } catch (err) {
          return refusedBy(err);
        }
        i = end + 4;
        searchFrom = 0;
        if (parsed.status >= 200) {
          head = parsed;
          remaining = parsed.length;
          break;
        }
        if (parsed.status === 101) return { ok: false, why: 'unexpected 101' };
      }
      if (head === undefined) continue;
      if (head.framing === 'none') return done(base + i);
    }
    if (i === buf.length) continue;
    switch (head.framing) {
      case 'length': {
        const take = Math.min(remaining, buf.length - i);
        keep(buf.subarray(i, i + take));
        remaining -= take;
        if (remaining === 0) return done(base + i + take);
        break;
      }
      case 'chunked': {
        let end: number;
        try {
          end = decoder.push(buf, i, keep);
        } catch (err) {
          return refusedBy(err);
        }
        if (decoder.done) return done(base + end);
        break;
      }
      default:
        keep(buf.subarray(i));
    }
  }
  if (head?.framing === 'close') return done('eof');
  return { ok: false, why: 'the connection ended before the response did' };
}

// --- llhttp: node:http's client reading the same bytes from an in-process socket ---

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A GET or HEAD through http.request, on a Duplex that plays `bytes` (in pieces cut at `cuts`, a turn of the
 * event loop after each) and then ends. The message ended at the first cut after which `res.complete` held,
 * or at 'eof' if only the end did it.
 */
async function viaNode(bytes: Buffer, method: Method, cuts: readonly number[]): Promise<Outcome> {
  const socket = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() });
  let res: IncomingMessage | undefined;
  let error: string | undefined;
  const body: Buffer[] = [];
  const settled = new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      error ??= 'no verdict within 2 s';
      resolve();
    }, 2000);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    const req = request({ method, path: '/', host: 'backend.invalid', createConnection: () => socket }, (r) => {
      res = r;
      r.on('data', (chunk: Buffer) => body.push(chunk));
      r.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
      r.on('end', finish);
      r.on('close', finish);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
      if (!res) finish();
    });
    req.on('close', () => {
      if (!res) finish();
    });
    req.end();
  });
  await tick();
  let end: number | 'eof' | undefined;
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) socket.push(bytes.subarray(from, cut));
    from = Math.max(from, cut);
    await tick();
    if (end === undefined && res?.complete) end = cut;
  }
  socket.push(null);
  await settled;
  if (end === undefined && res?.complete) end = 'eof';
  if (res === undefined || end === undefined) return { ok: false, why: error ?? 'incomplete' };
  return { ok: true, status: res.statusCode ?? 0, body: Buffer.concat(body).toString('latin1'), end };
}

/**
 * Gatehouse's verdict, and where Gatehouse accepted, the disagreement with llhttp (undefined when none).
 * llhttp gets the bytes cut just before and at Gatehouse's end of message, so an earlier or later end shows.
 */
async function compare(
  wire: string,
  method: Method,
  cuts: readonly number[],
): Promise<{ gatehouse: Outcome; node: Outcome; disagreement: string | undefined }> {
  const bytes = Buffer.from(wire, 'latin1');
  const gatehouse = viaGatehouse(bytes, method, cuts);
  const nodeCuts = gatehouse.ok && gatehouse.end !== 'eof' ? [gatehouse.end - 1, gatehouse.end] : [];
  const node = await viaNode(bytes, method, nodeCuts);
  let disagreement: string | undefined;
  if (gatehouse.ok) {
    if (!node.ok) disagreement = `llhttp refused (${node.why}) what Gatehouse accepted`;
    else if (node.status !== gatehouse.status) disagreement = `status ${gatehouse.status} vs llhttp ${node.status}`;
    else if (node.body !== gatehouse.body) disagreement = `body ${JSON.stringify(gatehouse.body)} vs llhttp ${JSON.stringify(node.body)}`;
    else if (node.end !== gatehouse.end) disagreement = `message end ${gatehouse.end} vs llhttp ${node.end}`;
  }
  return { gatehouse, node, disagreement };
}

// --- (a) the table ---------------------------------------------------------------------------------------

/** A row's expected verdict: refused, or [status, body]. */
type Expected = 'refused' | readonly [number, string];

const TE = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
const HELLO = '5\r\nhello\r\n0\r\n\r\n';
/** What llhttp reads from HELLO when it reads to the close instead of decoding chunks. */
const RAW_HELLO: Expected = [200, HELLO];

const ROWS: Array<[label: string, wire: string, gatehouse: Expected, llhttp: Expected, method?: Method]> = [
  // The ten red-team inputs of issue 10.
  [
    'TE chunked<NBSP> (llhttp: not chunked, read to close)',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xA0\r\n\r\n${HELLO}`,
    'refused',
    RAW_HELLO,
  ],
  ['TE <NBSP>chunked (llhttp: read to close)', `HTTP/1.1 200 OK\r\nTransfer-Encoding: \xA0chunked\r\n\r\n${HELLO}`, 'refused', RAW_HELLO],
  ['TE chunked,, (llhttp: read to close)', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,,\r\n\r\n${HELLO}`, 'refused', RAW_HELLO],
  ['chunk size "5 6"', `${TE}5 6\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk size "5 "', `${TE}5 \r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk size "5<HTAB>zz"', `${TE}5\tzz\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk size "5;"', `${TE}5;\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['unterminated quoted extension across CRLF', `${TE}5;a="x\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['trailer line without a colon', `${TE}5\r\nhello\r\n0\r\nnocolon\r\n\r\n`, 'refused', 'refused'],
  ['folded trailer line', `${TE}5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n`, 'refused', 'refused'],
  // Transfer-Encoding variants.
  ['TE chunked<HTAB> (llhttp: read to close)', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n${HELLO}`, 'refused', RAW_HELLO],
  [
    'TE chunked<VT> (a control byte: llhttp refuses the value)',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0B\r\n\r\n${HELLO}`,
    'refused',
    'refused',
  ],
  ['TE <HTAB>chunked<SP>', `HTTP/1.1 200 OK\r\nTransfer-Encoding: \tchunked \r\n\r\n${HELLO}`, [200, 'hello'], [200, 'hello']],
  ['TE CHUNKED', `HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n${HELLO}`, [200, 'hello'], [200, 'hello']],
  [
    'TE gzip, chunked (not decoded by Gatehouse)',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${HELLO}`,
    'refused',
    [200, 'hello'],
  ],
  ['TE chunked, gzip (llhttp: read to close)', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n${HELLO}`, 'refused', RAW_HELLO],
  [
    'two TE chunked lines',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO}`,
    'refused',
    [200, 'hello'],
  ],
  ['TE xchunked (llhttp: read to close)', `HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n${HELLO}`, 'refused', RAW_HELLO],
  // Content-Length.
  [
    'Content-Length and Transfer-Encoding',
    `HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO}`,
    'refused',
    'refused',
  ],
  [
    'Transfer-Encoding and Content-Length',
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${HELLO}`,
    'refused',
    'refused',
  ],
  ['two identical Content-Length lines', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['two different Content-Length lines', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 2\r\n\r\nabc', 'refused', 'refused'],
  ['Content-Length: 3, 3', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc', 'refused', 'refused'],
  ['Content-Length: +3', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc', 'refused', 'refused'],
  ['Content-Length: 003 with OWS', 'HTTP/1.1 200 OK\r\nContent-Length: \t003 \r\n\r\nabc', [200, 'abc'], [200, 'abc']],
  ['a huge Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nabc', 'refused', 'refused'],
  ['an empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nabc', 'refused', 'refused'],
  [
    'bytes after a Content-Length body',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n',
    [200, 'abc'],
    [200, 'abc'],
  ],
  // The head.
  ['obs-fold in the head', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 3\n\nabc', 'refused', 'refused'],
  ['a bare LF inside the head', 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc', 'refused', 'refused'],
  ['a NUL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  [
    'a NUL in the reason phrase (llhttp takes any byte there)',
    'HTTP/1.1 200 O\0K\r\nContent-Length: 3\r\n\r\nabc',
    'refused',
    [200, 'abc'],
  ],
  [
    'obs-text in a value and the reason',
    'HTTP/1.1 200 \xC9t\xE9\r\nX-A: caf\xE9\r\nContent-Length: 3\r\n\r\nabc',
    [200, 'abc'],
    [200, 'abc'],
  ],
  ['a DEL in a header value', 'HTTP/1.1 200 OK\r\nX-A: a\x7Fb\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['a header line without a colon', 'HTTP/1.1 200 OK\r\nnonsense\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['an empty header name', 'HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 3\r\n\r\nabc', 'refused', 'refused'],
  ['HTTP/2.0 in the status line (llhttp takes it)', 'HTTP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc', 'refused', [200, 'abc']],
  ['a status line without a reason', 'HTTP/1.1 200\r\nContent-Length: 3\r\n\r\nabc', [200, 'abc'], [200, 'abc']],
  ['CRLF before the status line', '\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc', 'refused', [200, 'abc']],
  // Bodies by framing.
  ['HTTP/1.0 close-delimited', 'HTTP/1.0 200 OK\r\n\r\nuntil the end', [200, 'until the end'], [200, 'until the end']],
  ['HTTP/1.1 without framing: close-delimited', 'HTTP/1.1 200 OK\r\n\r\nuntil the end', [200, 'until the end'], [200, 'until the end']],
  [
    '100 and 103, then the final response',
    `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok`,
    [201, 'ok'],
    [201, 'ok'],
  ],
  [
    'a 1xx with a Content-Length has no body',
    'HTTP/1.1 103 Early Hints\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    [200, 'ok'],
    [200, 'ok'],
  ],
  ['an unasked-for 101', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n', 'refused', 'refused'],
  [
    '204 with a Content-Length: no body, the message ends at the head',
    'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello',
    [204, ''],
    [204, ''],
  ],
  ['304 with a Content-Length', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', [304, ''], [304, '']],
  ['204 chunked: no body', `HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n`, [204, ''], [204, '']],
  ['HEAD with a Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', [200, ''], [200, ''], 'HEAD'],
  ['HEAD chunked', `${TE}`, [200, ''], [200, ''], 'HEAD'],
  // Chunk sizes.
  [
    'sizes in upper and lower case, with leading zeros',
    `${TE}000A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n`,
    [200, '0123456789abcdefghij'],
    [200, '0123456789abcdefghij'],
  ],
  ['chunk size 0x5', `${TE}0x5\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk size +5', `${TE}+5\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk size -5', `${TE}-5\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['an empty chunk size', `${TE}\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['a chunk size over 64 bits', `${TE}fffffffffffffffff\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['a chunk size of 14 hex digits', `${TE}ffffffffffffff\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['a bare LF after the chunk size', `${TE}5\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['chunk data longer than its size', `${TE}3\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['the body cut short', `${TE}5\r\nhel`, 'refused', 'refused'],
  ['the last chunk without its final CRLF', `${TE}5\r\nhello\r\n0\r\n`, 'refused', 'refused'],
  // Chunk extensions (RFC 9112 §7.1.1).
  [
    'extensions: token, quoted, bare name, several',
    `${TE}5;a=b;c="x y;\\"z\\"";flag\r\nhello\r\n0;last=1\r\n\r\n`,
    [200, 'hello'],
    [200, 'hello'],
  ],
  ['an extension with a space before ;', `${TE}5 ;a=b\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['an extension with a space after ;', `${TE}5; a=b\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['an extension with spaces around =', `${TE}5;a = b\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['an extension value with a space', `${TE}5;a=b c\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['an extension with an empty value (llhttp takes it)', `${TE}5;a=\r\nhello\r\n0\r\n\r\n`, 'refused', [200, 'hello']],
  ['an extension without a name (llhttp takes it)', `${TE}5;=b\r\nhello\r\n0\r\n\r\n`, 'refused', [200, 'hello']],
  ['a control character in a quoted extension', `${TE}5;a="\x01"\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  ['bytes after a quoted extension', `${TE}5;a="b"c\r\nhello\r\n0\r\n\r\n`, 'refused', 'refused'],
  // Trailers (RFC 9112 §7.1.2).
  ['trailers', `${TE}5\r\nhello\r\n0\r\nX-Sum: 12\r\nX-Empty:\r\nX-Ows: \t v \t\r\n\r\n`, [200, 'hello'], [200, 'hello']],
  ['a trailer with a space before the colon', `${TE}5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n`, 'refused', 'refused'],
  ['a Content-Length trailer', `${TE}5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n`, 'refused', 'refused'],
  [
    'a Transfer-Encoding trailer (llhttp ignores it)',
    `${TE}5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n`,
    'refused',
    [200, 'hello'],
  ],
  ['a NUL in a trailer value', `${TE}5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n`, 'refused', 'refused'],
  ['a bare LF ending a trailer', `${TE}5\r\nhello\r\n0\r\nX-T: 1\n\r\n`, 'refused', 'refused'],
  [
    'a response glued after a chunked body: the message ends before it',
    `${TE}${HELLO}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`,
    [200, 'hello'],
    [200, 'hello'],
  ],
  ['garbage after a chunked body', `${TE}${HELLO}garbage`, [200, 'hello'], [200, 'hello']],
  // Size limits: Gatehouse counts every byte of the head (16 KiB) and of the trailers (16 KiB); node:http counts
  // only names, values and the reason phrase, against 16 KiB for each.
  ['a head just under 16 KiB', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(16300)}\r\nContent-Length: 1\r\n\r\nx`, [200, 'x'], [200, 'x']],
  ['a head over 16 KiB', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(16390)}\r\nContent-Length: 1\r\n\r\nx`, 'refused', 'refused'],
  ['trailers of 16 KiB', `${TE}1\r\nx\r\n0\r\nX-Big: ${'a'.repeat(16384)}\r\n\r\n`, 'refused', 'refused'],
  [
    'a 12 KiB head and 12 KiB of trailers: separate budgets',
    `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(12000)}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Big: ${'a'.repeat(12000)}\r\n\r\n`,
    [200, 'x'],
    [200, 'x'],
  ],
  ['a 4000-byte chunk extension', `${TE}1;a=${'b'.repeat(4000)}\r\nx\r\n0\r\n\r\n`, [200, 'x'], [200, 'x']],
];

describe('differential: Gatehouse against llhttp, known cases', () => {
  it.each(ROWS)('%s', async (_label, wire, gatehouseExpected, nodeExpected, method = 'GET') => {
    const { gatehouse, node, disagreement } = await compare(wire, method, []);
    const verdict = (o: Outcome): Expected => (o.ok ? [o.status, o.body] : 'refused');
    expect(verdict(node), `llhttp: ${node.ok ? 'accepted' : node.why}`).toEqual(nodeExpected);
    expect(verdict(gatehouse), `Gatehouse: ${gatehouse.ok ? 'accepted' : gatehouse.why}`).toEqual(gatehouseExpected);
    expect(disagreement).toBeUndefined();
  });
});

// --- (b) the property ------------------------------------------------------------------------------------

/** Mostly `clean`, now and then one of the hostile variants: over the dozen-odd places a response has, about half come out with a flaw or two. */
const rarely = <T>(clean: fc.Arbitrary<T>, ...hostile: Array<fc.Arbitrary<T>>): fc.Arbitrary<T> =>
  fc.oneof({ weight: 25, arbitrary: clean }, { weight: 1, arbitrary: fc.oneof(...hostile) });

/** Whitespace a lax parser might skip: the two OWS bytes, and those only String.trim() or a regex's \s would take. */
const ows = rarely(fc.constantFrom('', '', ' ', '\t'), fc.constantFrom('\xA0', '\x0B', '\x0C', '\r', '\n', '\0'));
const HOSTILE_BYTES = [0x00, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x22, 0x2c, 0x3a, 0x3b, 0x3d, 0x5c, 0x7f, 0x80, 0xa0, 0xff] as const;

const latin1 = (maxLength: number) =>
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength }).map((codes) => String.fromCharCode(...codes));
/** Field-value bytes: VCHAR, SP, HTAB and obs-text. */
const fieldText = (maxLength: number) => fc.string({ unit: fc.constantFrom(...'abcXYZ019 -_.;=,"\\\t\x80\xE9\xFF'), maxLength });
const lineEnd = rarely(fc.constant('\r\n'), fc.constantFrom('\n', '\r', '\r\r\n', '\n\r', ' \r\n'));
const name = fc.constantFrom(
  'a',
  'name',
  'X-Sum',
  'ext',
  'Content-Type',
  'x-y.z',
  "!#$%&'*+-.^_`|~",
  'CONTENT-length',
  'Transfer-encoding',
);
const chunkedWord = fc.constantFrom('chunked', 'CHUNKED', 'Chunked', 'chunKed');

/** A header or trailer field line, with the ways one goes wrong: no colon, whitespace before it, obs-fold, odd bytes. */
const fieldLine = rarely(
  fc.tuple(name, ows, fieldText(8), ows).map(([n, a, v, b]) => `${n}:${a}${v}${b}`),
  fc.tuple(name, latin1(6)).map(([n, v]) => `${n}: ${v}`),
  fc.tuple(name, fc.constantFrom(' ', '\t', '\xA0')).map(([n, w]) => `${n}${w}: v`),
  name,
  fc.tuple(fc.constantFrom(' ', '\t'), fieldText(5)).map(([w, v]) => `${w}${v}`),
  fc.constantFrom(': no name', 'Content-Length: 5', 'Content-Length: x', 'Transfer-Encoding: gzip'),
);

/** A size line's number for `length` bytes: hex in either case, leading zeros; rarely a sign, 0x, whitespace or a wrong value. */
const chunkSize = (length: number) =>
  fc
    .tuple(
      rarely(fc.constant(0), fc.constantFrom(-1, 1)),
      fc.nat(3),
      fc.boolean(),
      rarely(fc.constant(''), fc.constantFrom('0x', '+', '-', ' ', '\t', '\xA0')),
      rarely(fc.constant(''), fc.constantFrom(' ', '\t', '\xA0', '\x0B', ' 6', '\tzz', ' ;a', '\0')),
    )
    .map(([delta, zeros, upper, prefix, suffix]) => {
      const hex = Math.max(0, length + delta).toString(16);
      return `${prefix}${'0'.repeat(zeros)}${upper ? hex.toUpperCase() : hex}${suffix}`;
    });

const quotedString = fc
  .array(
    rarely(
      fieldText(1).filter((c) => c !== '"' && c !== '\\'),
      fc.constantFrom('\\"', '\\\\', '\\a', '\\\t'),
    ),
    { maxLength: 5 },
  )
  .map((parts) => `"${parts.join('')}"`);

/** chunk-ext (RFC 9112 §7.1.1); rarely with OWS around ; and =, empty parts, unterminated or odd quoting. */
const chunkExt = rarely(
  fc.tuple(name, fc.option(fc.oneof(name, quotedString), { nil: undefined })).map(([n, v]) => `;${n}${v === undefined ? '' : `=${v}`}`),
  fc.tuple(ows, ows, name, ows, ows, name).map(([a, b, n, c, d, v]) => `${a};${b}${n}${c}=${d}${v}`),
  fc.constantFrom(';', ';=', ';a=', ';=b', ';;', ';a="x', ';a="x\\"', ';a="x"y', ';a=b c', ';a="\r\n"', ';a="\\\r"'),
  fc.tuple(name, latin1(4)).map(([n, v]) => `;${n}="${v}"`),
);

const chunk = latin1(12).chain((data) =>
  fc.tuple(chunkSize(data.length), fc.array(chunkExt, { maxLength: 2 })).map(([size, exts]) => ({ data, size, exts })),
);

const chunkedBody = fc
  .tuple(
    fc.array(chunk, { maxLength: 3 }),
    rarely(fc.constantFrom('0', '00', '000'), fc.constantFrom('0 ', '0\t', '0x0', '', ' 0')),
    fc.array(chunkExt, { maxLength: 1 }),
    lineEnd,
    fc.array(fc.tuple(fieldLine, lineEnd), { maxLength: 2 }),
    rarely(fc.constant('\r\n'), fc.constantFrom('', '\n', 'x', '\r\nx')),
    rarely(fc.constant('\r\n'), fc.constantFrom('\n', '', '\r', ' \r\n')),
  )
  .map(
    ([chunks, last, lastExts, sizeEnd, trailers, dataEnd, finalEnd]) =>
      chunks.map((c) => `${c.size}${c.exts.join('')}\r\n${c.data}${dataEnd}`).join('') +
      `${last}${lastExts.join('')}${sizeEnd}${trailers.map(([t, e]) => `${t}${e}`).join('')}${finalEnd}`,
  );

/** Transfer-Encoding values: `chunked` padded with OWS; rarely lists, empty members, other codings, hostile whitespace. */
const teValue = rarely(
  fc.tuple(ows, chunkedWord, rarely(fc.constantFrom('', ' ', '  '), ows)).map(([a, c, b]) => `${a}${c}${b}`),
  fc
    .tuple(
      fc.array(rarely(chunkedWord, fc.constantFrom('gzip', 'identity', '', 'xchunked', 'chunked\xA0', '\xA0chunked')), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.constantFrom(',', ', ', ' ,', ',\t', ',,'),
    )
    .map(([codings, sep]) => ` ${codings.join(sep)}`),
);

/** Content-Length values for a body of `length`: right, with OWS and leading zeros; rarely a list, a sign or a wrong value. */
const clValue = fc
  .tuple(
    rarely(fc.constantFrom('exact', 'zeros'), fc.constantFrom('list', 'other', 'plus', 'hex', 'empty', 'huge', 'space')),
    fc.nat(20),
    ows,
    ows,
  )
  .map(([kind, other, before, after]) => (length: number) => {
    const v = {
      exact: `${length}`,
      zeros: `00${length}`,
      list: `${length}, ${length}`,
      other: `${other}`,
      plus: `+${length}`,
      hex: `0x${length.toString(16)}`,
      empty: '',
      huge: '99999999999999999999',
      space: `${length} ${length}`,
    }[kind];
    return `${before}${v}${after}`;
  });

/** The framing header lines for a body of `length`. */
type Framing = (length: number) => string[];

const framing: fc.Arbitrary<{ readonly chunked: boolean; readonly lines: Framing }> = fc.oneof(
  { weight: 5, arbitrary: teValue.map((te) => ({ chunked: true, lines: () => [`Transfer-Encoding:${te}`] })) },
  { weight: 3, arbitrary: clValue.map((cl) => ({ chunked: false, lines: (length: number) => [`Content-Length:${cl(length)}`] })) },
  { weight: 1, arbitrary: fc.constant({ chunked: false, lines: () => [] }) },
  // Duplicated and conflicting framing headers.
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.boolean(),
        fc.array(
          fc.oneof(
            teValue.map((te) => () => `Transfer-Encoding:${te}`),
            clValue.map((cl) => (length: number) => `Content-Length:${cl(length)}`),
          ),
          { minLength: 2, maxLength: 3 },
        ),
      )
      .map(([chunked, lines]) => ({ chunked, lines: (length: number) => lines.map((line) => line(length)) })),
  },
);

const statusLine = fc
  .tuple(
    rarely(fc.constantFrom('HTTP/1.1', 'HTTP/1.0'), fc.constantFrom('HTTP/2.0', 'HTTP/1.2', 'http/1.1', 'HTTP/1.1 ', 'HTTP/01.1')),
    rarely(fc.constantFrom(200, 201, 204, 304, 404, 500), fc.constantFrom(100, 101, 103, 199, 99, 600, 999)),
    rarely(
      fc.constantFrom(' OK', '', ' ', ' Not Found'),
      latin1(4).map((r) => ` ${r}`),
    ),
  )
  .map(([version, status, reason]) => `${version} ${status}${reason}`);

const interim = fc
  .tuple(fc.constantFrom(100, 102, 103), fc.array(fieldLine, { maxLength: 1 }))
  .map(([status, lines]) => `HTTP/1.1 ${status} Info\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);

/** A position anywhere in the response: fast-check's integers lean towards 0, which would aim every cut and edit at the status line. */
const anywhere = fc.noBias(fc.nat(0xffff));

const mutation = fc.record({
  at: anywhere,
  op: fc.constantFrom('insert', 'replace', 'delete'),
  byte: fc.oneof(fc.constantFrom(...HOSTILE_BYTES), fc.integer({ min: 0, max: 255 })),
});

interface Case {
  readonly wire: string;
  readonly method: Method;
  readonly cuts: readonly number[];
}

const responseCase: fc.Arbitrary<Case> = fc
  .record({
    interims: rarely(fc.constant<string[]>([]), fc.array(interim, { minLength: 1, maxLength: 2 })),
    status: statusLine,
    framing,
    others: fc.array(fieldLine, { maxLength: 2 }),
    connection: rarely(
      fc.constant<readonly string[]>([]),
      fc.constantFrom<readonly string[]>(
        ['Connection: close'],
        ['Connection: keep-alive'],
        ['Connection: \xA0close'],
        ['Keep-Alive: timeout=5'],
      ),
    ),
    headEnd: lineEnd,
    chunkedBody,
    rawBody: latin1(16),
    tail: rarely(fc.constant(''), fc.constantFrom('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', '\r\n', 'x'), latin1(4)),
    mutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, fc.array(mutation, { minLength: 1, maxLength: 2 })),
    method: rarely(fc.constant<Method>('GET'), fc.constant<Method>('HEAD')),
    cuts: fc.array(anywhere, { maxLength: 6 }),
  })
  .map((p) => {
    const body = p.framing.chunked ? p.chunkedBody : p.rawBody;
    const lines = [...p.framing.lines(body.length), ...p.others, ...p.connection];
    let wire = `${p.interims.join('')}${p.status}${p.headEnd}${lines.map((l) => `${l}${p.headEnd}`).join('')}\r\n${body}${p.tail}`;
    for (const m of p.mutations) {
      const at = m.at % (wire.length + 1);
      const byte = String.fromCharCode(m.byte);
      if (m.op === 'insert') wire = wire.slice(0, at) + byte + wire.slice(at);
      else if (m.op === 'replace') wire = wire.slice(0, at) + byte + wire.slice(at + 1);
      else wire = wire.slice(0, at) + wire.slice(at + 1);
    }
    const cuts = [...new Set(p.cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
    return { wire, method: p.method, cuts };
  });

describe('differential: Gatehouse against llhttp, generated responses', () => {
  it('whatever Gatehouse accepts, llhttp accepts with the same status, body and end of message', async () => {
    const numRuns = Number(process.env['FUZZ_RUNS'] ?? 1000);
    const seed = Number(process.env['FUZZ_SEED'] ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0);
    // Printed before the run: FUZZ_SEED=<seed> replays it (fast-check's failure report names the seed and the shrunk input too).
    console.log(`upstream-differential: FUZZ_SEED=${seed} FUZZ_RUNS=${numRuns}`);
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(responseCase, async ({ wire, method, cuts }) => {
        const { gatehouse, disagreement } = await compare(wire, method, cuts);
        if (gatehouse.ok) accepted++;
        if (disagreement !== undefined)
          throw new Error(`Gatehouse accepted (${method}, cuts ${JSON.stringify(cuts)}) what llhttp frames otherwise: ${disagreement}`);
      }),
      { seed, numRuns },
    );
    console.log(`upstream-differential: Gatehouse accepted ${accepted} of ${numRuns} generated responses`);
    // A generator that only ever produced refusals would make the property hold vacuously.
    expect(accepted / numRuns).toBeGreaterThan(0.2);
  });
});
