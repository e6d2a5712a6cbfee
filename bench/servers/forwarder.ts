import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { listenAndReport } from './listen.ts';

/**
 * The bare Node forwarder baseline: node:http server + undici Pool (keep-alive, 128 connections, no
 * pipelining). No auth, no header filtering, no logging: the ceiling any Node gateway built this way
 * reaches on this machine. MODE=stream (default) pipes with `pool.stream`; MODE=dispatch uses a raw
 * dispatch handler (undici 8 API), the technique src/proxy/forward.ts uses.
 */
const target = process.env['TARGET'];
if (!target) throw new Error('TARGET is required');
const mode = process.env['MODE'] ?? 'stream';
const pool = new Pool(target, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
// MODE=dispatch with ADD_HEADERS (a JSON [name, value, ...] list): the same forwarder sending extra headers on
// every request, e.g. the ones Gatehouse adds (token, identity, forwarding), to price them on their own.
const added: string[] = process.env['ADD_HEADERS'] ? (JSON.parse(process.env['ADD_HEADERS']) as string[]) : [];

function fail(res: ServerResponse): void {
  if (!res.headersSent) {
    res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
}

function viaStream(req: IncomingMessage, res: ServerResponse, hasBody: boolean): void {
  pool.stream(
    { path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: req.headers, body: hasBody ? req : null },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, headers as Record<string, string | string[]>);
      return res;
    },
    (err) => {
      if (err) fail(res);
    },
  );
}

function withAdded(req: IncomingMessage): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() !== 'host') out.push(raw[i] as string, raw[i + 1] as string);
  for (const h of added) out.push(h);
  return out;
}

function viaDispatch(req: IncomingMessage, res: ServerResponse, hasBody: boolean): void {
  pool.dispatch(
    {
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: added.length > 0 ? withAdded(req) : req.headers,
      body: hasBody ? req : null,
    },
    {
      // undici 8 requires every handler method, even an empty one.
      onRequestStart() {},
      onResponseStart(_c, statusCode, headers) {
        res.writeHead(statusCode, headers as Record<string, string | string[]>);
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        fail(res);
      },
    },
  );
}

const handle = mode === 'dispatch' ? viaDispatch : viaStream;
const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => {
  handle(req, res, req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
});
listenAndReport(server, `forwarder (${mode})`);
