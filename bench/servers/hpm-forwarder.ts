import { Agent, type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import express from 'express';
import { listenAndReport } from './listen.ts';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => unknown;

/**
 * Optional baseline (`--with-hpm`): Express 5 + http-proxy-middleware with a keep-alive agent, the usual
 * way a Node BFF is assembled. Loaded by name at run time so the bench type-checks without the package.
 */
const target = process.env['TARGET'];
if (!target) throw new Error('TARGET is required');
const pkg = 'http-proxy-middleware';
const mod: unknown = await import(pkg);
const create = (mod as { createProxyMiddleware?: unknown }).createProxyMiddleware;
if (typeof create !== 'function') throw new Error('http-proxy-middleware has no createProxyMiddleware export');
const proxy = (create as (options: Record<string, unknown>) => Middleware)({
  target,
  agent: new Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 4000 }),
  xfwd: true,
});
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(proxy);
listenAndReport(createServer({ keepAliveTimeout: 5000 }, app), 'hpm-forwarder');
