import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { send, type RawResponse } from '../helpers/backends.ts';
import { startRawBackend, type Script } from '../helpers/raw-backend.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * Issue 10 (red team): Gatehouse's own response parser took framings that node:http's parser (llhttp)
 * refuses, or framed them differently. A backend, or anything able to write into a backend's responses,
 * could then end a response where Gatehouse and every other HTTP/1.1 hop disagree (RFC 9112 §11.2). Each
 * of these is now refused: 502 bad_gateway, and the connection it came on never carries another request.
 */

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

/** [label, path, the backend's whole response]. Each is written in one piece, as one segment on loopback. */
const RED_TEAM: ReadonlyArray<readonly [string, string, string]> = [
  // llhttp reads these until the connection closes (the final coding is not `chunked`); Gatehouse decoded chunks.
  [
    'Transfer-Encoding: chunked<NBSP>',
    '/te-nbsp-after',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xA0\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  ],
  [
    'Transfer-Encoding: <NBSP>chunked',
    '/te-nbsp-before',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: \xA0chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  ],
  ['Transfer-Encoding: chunked,,', '/te-empty-members', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,,\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  // llhttp refuses these outright.
  ['chunk size "5 6"', '/size-space-digit', `${CHUNKED_HEAD}5 6\r\nhello\r\n0\r\n\r\n`],
  ['chunk size "5 "', '/size-trailing-space', `${CHUNKED_HEAD}5 \r\nhello\r\n0\r\n\r\n`],
  ['chunk size "5<HTAB>zz"', '/size-tab-junk', `${CHUNKED_HEAD}5\tzz\r\nhello\r\n0\r\n\r\n`],
  ['chunk size "5;" (empty extension)', '/ext-empty', `${CHUNKED_HEAD}5;\r\nhello\r\n0\r\n\r\n`],
  ['chunk extension with an unterminated quoted value', '/ext-open-quote', `${CHUNKED_HEAD}5;a="x\r\nhello\r\n0\r\n\r\n`],
  ['a trailer line without a colon', '/trailer-no-colon', `${CHUNKED_HEAD}5\r\nhello\r\n0\r\nnocolon\r\n\r\n`],
  ['a folded trailer line (obs-fold)', '/trailer-folded', `${CHUNKED_HEAD}5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n`],
];

/** Each row's bytes, written in one piece on a kept-alive connection, and `/ok` to warm the pool. */
const SCRIPTS: Record<string, Script> = Object.fromEntries([
  ...RED_TEAM.map(([, path, bytes]): [string, Script] => [path, (s) => s.write(Buffer.from(bytes, 'latin1'))]),
  ['/ok', (s: Socket) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')],
]);

describe('response framings llhttp refuses or reads differently are refused by the proxy (issue 10)', () => {
  const proxy = useBareProxy({ backend: () => startRawBackend(SCRIPTS), mapping: { timeoutMs: 3000 } });

  const lastConn = (path: string) => [...proxy.backend.seen].reverse().find((s) => s.path === path)?.conn;

  it.each(RED_TEAM)('%s → 502 bad_gateway, and its connection is not reused', async (label, path) => {
    // Warm the pool first, so the row's request goes out on a kept-alive connection that could be reused after it.
    expect((await send(proxy.url, { path: '/api/ok' })).body.toString()).toBe('ok');
    let res: RawResponse;
    try {
      res = await send(proxy.url, { path: `/api${path}` });
    } catch (err) {
      // A response cut short after its status line: refused, but too late to say so with a status.
      throw new Error(`${label}: the response was cut short instead of answered 502 (${(err as Error).message})`);
    }
    expectError(res, 502, 'bad_gateway', label);
    const refusedOn = lastConn(path);
    expect(refusedOn).toBeDefined();
    expect((await send(proxy.url, { path: '/api/ok' })).body.toString()).toBe('ok');
    expect(lastConn('/ok'), `${label}: the next request went out on the same connection`).not.toBe(refusedOn);
  });
});
