import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { closed, closedPortUrl, nextMessage, openWs, sendRaw, startWsBackend, type TestWsBackend } from '../helpers/backends.ts';
import { mappingsYaml, SESSION_COOKIE, startProxyStack, type ProxyStack } from '../helpers/proxy-stack.ts';
import { expectError, expectErrorUnforwarded, upgradeRefusal } from '../helpers/expect-error.ts';

describe('WebSocket upgrades on /api/*', () => {
  let backend: TestWsBackend;
  let stack: ProxyStack;
  let ws: string;
  let accessToken: string;

  beforeAll(async () => {
    backend = await startWsBackend({
      reject: (req, socket) => {
        if (req.url?.startsWith('/idle/hang')) return true;
        if (!req.url?.startsWith('/decline')) return false;
        // A chunked refusal: Gatehouse must relay it as a well-formed HTTP response.
        socket.end(
          'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Reason: policy\r\n\r\n5\r\nnope!\r\n0\r\n\r\n',
        );
        return true;
      },
    });
    const down = await closedPortUrl();
    stack = await startProxyStack({
      yaml: mappingsYaml(
        [
          { frontendHost: '*', backend: backend.url },
          { frontendHost: '*', pathPrefix: '/nows', backend: backend.url, websocket: false },
          { frontendHost: '*', pathPrefix: '/idle', backend: backend.url, timeoutMs: 300 },
          { frontendHost: '*', pathPrefix: '/down', backend: down },
        ],
        'allowedOrigins: ["https://spa.example.com"]\n',
      ),
    });
    ws = stack.url.replace('http:', 'ws:');
    accessToken = (await stack.gh.app.sessions.load(parseSessionSecret(stack.sessionValue)))?.tokens.accessToken ?? '';
  });
  afterAll(async () => {
    await stack?.close();
    await backend?.close();
  });

  const open = (path: string, options: { protocols?: string[]; headers?: Record<string, string>; origin?: string } = {}) =>
    openWs(`${ws}${path}`, { ...options, headers: { cookie: stack.sessionCookie, ...options.headers } });
  const mustOpen = async (path: string, options: Parameters<typeof open>[1] = {}) => {
    const out = await open(path, options);
    if (!out.ok) throw new Error(`upgrade refused: ${out.status} ${out.body}`);
    return out.ws;
  };

  it('relays text and binary frames unchanged, and strips /api from the path', async () => {
    const before = backend.upgrades.length;
    const client = await mustOpen('/api/chat/room?x=1&y=%2F', { origin: stack.url });
    expect(backend.upgrades[before]?.url).toBe('/chat/room?x=1&y=%2F');
    client.send('hello');
    expect(await nextMessage(client)).toEqual({ data: Buffer.from('hello'), isBinary: false });
    const binary = Buffer.from([0, 1, 2, 255, 254, 0x88, 0x8a]);
    client.send(binary);
    expect(await nextMessage(client)).toEqual({ data: binary, isBinary: true });
    const big = Buffer.alloc(200_000, 7);
    client.send(big);
    const echoed = await nextMessage(client);
    expect(echoed.isBinary).toBe(true);
    expect(echoed.data.equals(big)).toBe(true);
    client.close();
  });

  it('negotiates subprotocols end to end', async () => {
    const before = backend.upgrades.length;
    const client = await mustOpen('/api/chat', { protocols: ['chat.v2', 'chat.v1'] });
    expect(client.protocol).toBe('chat.v2');
    expect(backend.upgrades[before]?.protocol).toBe('chat.v2,chat.v1');
    client.close();
  });

  it('passes ping and pong both ways', async () => {
    const index = backend.sockets.length;
    const client = await mustOpen('/api/chat');
    const pong = new Promise<Buffer>((resolve) => client.once('pong', resolve));
    client.ping(Buffer.from('are-you-there'));
    expect((await pong).toString()).toBe('are-you-there');
    const server = await backend.waitForSocket(index);
    const serverPong = new Promise<Buffer>((resolve) => server.once('pong', resolve));
    const clientPing = new Promise<Buffer>((resolve) => client.once('ping', resolve));
    server.ping(Buffer.from('from-backend'));
    expect((await clientPing).toString()).toBe('from-backend');
    expect((await serverPong).toString()).toBe('from-backend');
    client.close();
  });

  it('passes close codes both ways', async () => {
    const client = await mustOpen('/api/chat');
    const done = closed(client);
    client.send('close:4001:bye now');
    expect(await done).toEqual({ code: 4001, reason: 'bye now' });

    const index = backend.sockets.length;
    const client2 = await mustOpen('/api/chat');
    const server = await backend.waitForSocket(index);
    const serverClosed = new Promise<{ code: number; reason: string }>((resolve) =>
      server.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    client2.close(4002, 'client done');
    expect(await serverClosed).toEqual({ code: 4002, reason: 'client done' });
  });

  it('either side going away closes the other', async () => {
    const index = backend.sockets.length;
    const client = await mustOpen('/api/chat');
    const server = await backend.waitForSocket(index);
    const clientClosed = closed(client);
    server.terminate();
    expect((await clientClosed).code).toBe(1006);

    const index2 = backend.sockets.length;
    const client2 = await mustOpen('/api/chat');
    const server2 = await backend.waitForSocket(index2);
    const serverClosed = new Promise<number>((resolve) => server2.once('close', (code) => resolve(code)));
    client2.terminate();
    expect(await serverClosed).toBe(1006);
  });

  it('keeps an idle WebSocket open past the mapping timeoutMs (a request timeout, not an idle one)', async () => {
    const client = await mustOpen('/api/idle/chat');
    await new Promise((r) => setTimeout(r, 800));
    expect(client.readyState).toBe(client.OPEN);
    client.send('still here');
    expect((await nextMessage(client)).data.toString()).toBe('still here');
    client.close();
  });

  it('injects the session identity on the upgrade request and strips Gatehouse cookies', async () => {
    const before = backend.upgrades.length;
    const client = await mustOpen('/api/chat', { headers: { cookie: `${stack.sessionCookie}; theme=dark` } });
    const up = backend.upgrades[before];
    expect(up?.headers.get('authorization')).toEqual([`Bearer ${accessToken}`]);
    expect(up?.headers.get('x-user-sub')).toEqual(['alice']);
    expect(up?.headers.get('x-user-email')).toEqual(['alice@example.test']);
    expect(up?.headers.get('cookie')).toEqual(['theme=dark']);
    expect(up?.headers.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    client.close();
  });

  it('without a session: HTTP 401 unauthorized on the socket, no backend connection', async () => {
    await expectErrorUnforwarded(
      () => backend.connections,
      () => upgradeRefusal(openWs(`${ws}/api/chat`)),
      401,
      'unauthorized',
    );
  });

  it('Origin must be same-origin or allowed: otherwise 403 origin_not_allowed before any backend connect', async () => {
    const connections = backend.connections;
    for (const origin of [
      'https://evil.example',
      'null',
      `${stack.url}.evil.example`,
      'https://spa.example.com.evil.example',
      stack.url.replace('127.0.0.1', 'localhost'),
    ]) {
      expectError(await upgradeRefusal(open('/api/chat', { origin }), origin), 403, 'origin_not_allowed', origin);
    }
    expect(backend.connections).toBe(connections);
    for (const origin of [stack.url, 'https://spa.example.com']) {
      const client = await mustOpen('/api/chat', { origin });
      client.close();
    }
  });

  it('a mapping with websocket: false refuses the upgrade and never connects', async () => {
    await expectErrorUnforwarded(
      () => backend.connections,
      () => upgradeRefusal(open('/api/nows/chat')),
      404,
      'not_found',
    );
  });

  it('refuses a non-WebSocket upgrade (h2c) with 400 bad_request', async () => {
    const h2c =
      `GET /api/chat HTTP/1.1\r\nHost: ${new URL(stack.url).host}\r\nCookie: ${stack.sessionCookie}\r\n` +
      'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
    await expectErrorUnforwarded(
      () => backend.connections,
      () => sendRaw(stack.url, h2c),
      400,
      'bad_request',
    );
  });

  it('relays a backend that declines the upgrade as a well-formed HTTP response', async () => {
    const out = await upgradeRefusal(open('/api/decline'));
    expect(out.status).toBe(403);
    expect(out.body).toBe('nope!');
    expect(out.headers['x-reason']).toBe('policy');
  });

  it('an unreachable WebSocket backend → 502 bad_gateway on the socket', async () => {
    const out = await upgradeRefusal(open('/api/down/chat'));
    expectError(out, 502, 'bad_gateway');
    expect(out.body).not.toContain('127.0.0.1');
  });

  it('a backend that never answers the upgrade → 504 gateway_timeout after timeoutMs', async () => {
    const started = Date.now();
    const out = await upgradeRefusal(open('/api/idle/hang'));
    expectError(out, 504, 'gateway_timeout');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('rejects a session cookie it does not know', async () => {
    const out = await upgradeRefusal(openWs(`${ws}/api/chat`, { headers: { cookie: `${SESSION_COOKIE}=${'A'.repeat(43)}` } }));
    expectError(out, 401, 'unauthorized');
  });
});
