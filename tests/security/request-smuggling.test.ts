import { describe, expect, it } from 'vitest';
import { send, sendRaw } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * SMUGGLE (catalogue #94; RFC 9112 §6.3): ambiguous framing is refused with 400 before anything is written
 * upstream, and the pooled backend connection carries nothing a later request could be glued to.
 * Node's parser does the refusing; this guards it for Node 24 and any front end placed before Gatehouse.
 */
describe('request smuggling framings', () => {
  const proxy = useBareProxy();

  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
  it.each([
    ['CL + TE', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['TE + CL', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${smuggled}`],
    ['TE: xchunked', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
    ['TE: chunked, identity', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    [
      'two TE lines (identity, chunked)',
      `POST /api/a HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    ['Content-Length: 1, 2', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1, 2\r\n\r\nab`],
    ['two different Content-Length lines', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`],
    ['space before the colon', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nContent-Length : 3\r\n\r\nabc`],
    ['obs-fold continuation', `GET /api/a HTTP/1.1\r\nHost: {host}\r\nX-Folded: a\r\n b\r\n\r\n`],
    ['NUL in the request-target', `GET /api/a\u0000b HTTP/1.1\r\nHost: {host}\r\n\r\n`],
    ['bare LF line endings', `GET /api/a HTTP/1.1\nHost: {host}\nContent-Length: 0\n\n`],
    ['invalid chunk size', `POST /api/a HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`],
  ])('%s → 400, nothing forwarded', async (_name, raw) => {
    const before = proxy.backend.requests.length;
    const res = await sendRaw(proxy.url, raw.replace('{host}', proxy.host));
    expect(res.status, res.raw.slice(0, 200)).toBe(400);
    await new Promise((r) => setTimeout(r, 20));
    expect(proxy.backend.requests.length).toBe(before);
  });

  it('closes the connection after refusing framing Node itself accepted', async () => {
    const res = await sendRaw(
      proxy.url,
      `POST /api/a HTTP/1.1\r\nHost: ${proxy.host}\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    expectError(res, 400, 'bad_request');
    expect(res.head).toMatch(/\r\nconnection: close/i);
  });

  it('a chunked body with a smuggled request after it reaches the backend as exactly one request', async () => {
    const before = proxy.backend.requests.length;
    const res = await sendRaw(
      proxy.url,
      `POST /api/a HTTP/1.1\r\nHost: ${proxy.host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    // The pooled connection is reused: the next request must arrive as itself.
    const next = await send(proxy.url, { path: '/api/after' });
    expect(next.status).toBe(200);
    expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url} ${r.bodySize}`)).toEqual(['POST /a 3', 'GET /after 0']);
  });
});
