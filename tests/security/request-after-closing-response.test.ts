import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { exchangeUntilClose, send, statusesIn } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * RFC 9112 §9.6: a server that sends a response saying `Connection: close` "MUST NOT process any further requests
 * received on that connection". Gatehouse closes a connection after refusing a request whose framing is in doubt
 * (a Connection header naming Content-Length, say): what follows that request on the wire is exactly what cannot
 * be trusted. node:http still parses the bytes after it and hands on the next request, which used to be forwarded
 * to the backend: executed, and never answered, since node:http closes the connection after the refusal. The same
 * for a request behind an `Expect: 100-continue` answered without its 100, after which node:http closes too, and
 * behind a request that is not HTTP/1.1, whose answer node:http may decide to close only as it writes it. The
 * property test (one-client-request-one-upstream-request) checks this for every generated connection.
 */
describe('a request pipelined behind a response that closes the connection', () => {
  const proxy = useBareProxy();

  const exchange = async (bytes: string) => (await exchangeUntilClose(proxy.url, bytes)).received;

  /** A kept-alive backend connection waits in the pool, so a request let through would be written at once. */
  async function warm(): Promise<number> {
    expect((await send(proxy.url, { path: '/api/warm' })).status).toBe(200);
    return proxy.backend.requests.length;
  }

  const statuses = statusesIn;
  const after = (path: string, method = 'POST') => `${method} /api/${path} HTTP/1.1\r\nHost: ${proxy.host}\r\nContent-Length: 0\r\n\r\n`;

  it('after a refused framing (Connection: content-length): one 400 bad_request, and the next request never reaches the backend', async () => {
    const before = await warm();
    const received = await exchange(
      `POST /api/upload HTTP/1.1\r\nHost: ${proxy.host}\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello` +
        after('transfer-all-funds'),
    );
    expect(statuses(received)).toEqual([400]);
    expect(received).toMatch(/\r\nconnection: close\r\n/i);
    expect(received).toContain('"error":"bad_request"');
    await new Promise((r) => setTimeout(r, 100));
    expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('after an Expect: 100-continue answered without its 100 (node:http then closes): the request after it is not processed', async () => {
    const before = await warm();
    // The first request is still owed when the second is read, so no 100 Continue is sent for it (pipelining.ts).
    const received = await exchange(
      `GET /api/first HTTP/1.1\r\nHost: ${proxy.host}\r\n\r\n` +
        `POST /api/expecting HTTP/1.1\r\nHost: ${proxy.host}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi` +
        after('transfer-all-funds'),
    );
    expect(statuses(received)).toEqual([200, 200]);
    await new Promise((r) => setTimeout(r, 100));
    expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /first', 'POST /expecting']);
  });

  it.each(['HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9'])(
    'behind a %s request (whose answer node:http may decide to close only as it writes it): not processed, and the connection closes',
    async (version) => {
      const before = await warm();
      const received = await exchange(
        `GET /api/old-client ${version}\r\nHost: ${proxy.host}\r\nConnection: keep-alive\r\n\r\n` + after('transfer-all-funds'),
      );
      expect(statuses(received)).toEqual([200]);
      expect(received).toMatch(/\r\nconnection: close\r\n/i);
      await new Promise((r) => setTimeout(r, 100));
      expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /old-client']);
    },
  );

  it('requests pipelined on a kept-alive connection are all answered, in order (nothing closes it)', async () => {
    const before = proxy.backend.requests.length;
    const { hostname, port } = new URL(proxy.url);
    const received = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), hostname);
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (statuses(text).length === 3 && text.endsWith('}')) socket.end();
      });
      socket.on('close', () => resolve(text));
      socket.write(after('one') + after('two', 'PUT') + after('three', 'DELETE'), 'latin1');
    });
    expect(statuses(received)).toEqual([200, 200, 200]);
    expect(proxy.backend.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['POST /one', 'PUT /two', 'DELETE /three']);
    // And the backend connection is still good for the next client.
    expect((await send(proxy.url, { path: '/api/next' })).status).toBe(200);
  });
});
