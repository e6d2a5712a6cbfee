import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoBackend {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The demo backend behind `npm start`: echoes the request it got (method, path, headers, including the
 * identity headers Gatehouse injected), streams server-sent events on /events, and echoes WebSocket messages.
 */
export async function startDemoBackend(options: { port: number; host?: string }): Promise<DemoBackend> {
  const { WebSocketServer } = await import('ws');
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://backend');
    if (url.pathname.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        res.write(`id: ${n}\ndata: ${JSON.stringify({ n, at: new Date().toISOString() })}\n\n`);
        if (n === 5) {
          clearInterval(timer);
          res.end();
        }
      }, 500);
      req.on('close', () => clearInterval(timer));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 65536) chunks.push(c);
    });
    req.on('end', () => {
      const body = JSON.stringify(
        {
          backend: 'gatehouse-demo',
          method: req.method,
          path: url.pathname,
          query: url.search,
          // The demo page shows this echo: the token is masked so the browser never displays it.
          headers: {
            ...req.headers,
            ...(req.headers.authorization
              ? {
                  authorization:
                    `${req.headers.authorization.slice(0, 7)}… ` +
                    `(${req.headers.authorization.length - 7} characters, masked by the demo backend)`,
                }
              : {}),
          },
          bodyBytes: size,
          body: size <= 65536 ? Buffer.concat(chunks).toString('utf8') : undefined,
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
  wss.on('connection', (ws, req) => {
    ws.send(JSON.stringify({ hello: req.headers['x-user-sub'] ?? 'anonymous' }));
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
