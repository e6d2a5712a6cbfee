import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { listenAndReport } from './listen.ts';

/**
 * Backend for the streaming probes: `.../sse` answers with an event stream whose first event is written at
 * once and then holds the response open; `.../headers` answers with the request's raw header list; WebSocket upgrades get an echo server that sends nothing unprompted.
 */
const server = createServer((req, res) => {
  if ((req.url ?? '').split('?', 1)[0]?.endsWith('/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('data: first\n\n');
    return;
  }
  req.resume();
  if ((req.url ?? '').split('?', 1)[0]?.endsWith('/headers')) {
    // What a proxy sent, so the bench can build a baseline that sends the same request.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.rawHeaders));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
  res.end('ok\n');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
listenAndReport(server, 'stream-backend');
