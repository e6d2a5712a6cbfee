import { createServer } from 'node:http';
import { listenAndReport } from './listen.ts';

/** The fast backend when nginx is not installed: 200 with a small fixed body, nothing else. */
const body = Buffer.from('{"ok":true}\n');
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
listenAndReport(server, 'node-backend');
