/**
 * What answering CORS costs per /api request: the `cors` package called per request on a real node:http
 * ServerResponse (as a middleware outside Express would be), against the answers policy/cors.ts compiles at
 * load (a Map lookup, the headers then passed to writeHead with the rest). Evidence for docs/performance.md;
 * run with `node bench/micro/cors.ts`.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import cors from 'cors';
import { compileCors, CORS_DEFAULTS } from '../../src/policy/cors.ts';

const N = Number(process.env['REQUESTS'] ?? 200_000);
const ORIGINS = ['https://spa.example.com', 'https://admin.example.com'];
const settings = {
  origins: ORIGINS,
  ...CORS_DEFAULTS,
  allowedHeaders: [...CORS_DEFAULTS.allowedHeaders],
  exposedHeaders: [...CORS_DEFAULTS.exposedHeaders],
};
const compiled = compileCors(settings);
const middleware = cors({
  origin: (origin, cb) => cb(null, origin !== undefined && ORIGINS.includes(origin) ? origin : false),
  credentials: true,
  methods: 'GET,HEAD,POST,PUT,PATCH,DELETE',
  allowedHeaders: settings.allowedHeaders,
  exposedHeaders: settings.exposedHeaders,
  maxAge: settings.maxAgeSeconds,
});

function response(origin: string | undefined): ServerResponse {
  const req = new IncomingMessage(new Socket());
  req.method = 'GET';
  req.headers = origin === undefined ? {} : { origin };
  return new ServerResponse(req);
}

let sink = 0;
function measure(name: string, run: (res: ServerResponse, origin: string | undefined) => void, origin: string | undefined): number {
  const pool = Array.from({ length: 1000 }, () => response(origin));
  for (let i = 0; i < 20_000; i++) run(pool[i % pool.length] as ServerResponse, origin);
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i++) run(pool[i % pool.length] as ServerResponse, origin);
  const used = process.cpuUsage(cpu);
  const us = (used.user + used.system) / N;
  process.stdout.write(`${name.padEnd(64)} ${us.toFixed(3).padStart(7)} µs CPU/request\n`);
  return us;
}

for (const [label, origin] of [
  ['allowed Origin', ORIGINS[0]],
  ['no Origin (same-origin GET)', undefined],
] as const) {
  measure(
    `cors package per request, ${label}`,
    (res) => {
      res.removeHeader('access-control-allow-origin');
      res.removeHeader('vary');
      middleware(res.req, res, () => (sink += 1));
    },
    origin,
  );
  measure(
    `compiled at load (policy/cors.ts), ${label}`,
    (res, o) => {
      res.removeHeader('access-control-allow-origin');
      res.removeHeader('vary');
      const headers = compiled.actual(o);
      // The proxy hands these to writeHead with the rest of the response head: the same work either way.
      if (headers) sink += headers.length;
    },
    origin,
  );
  measure(
    `compiled at load, then each header set on the response, ${label}`,
    (res, o) => {
      res.removeHeader('access-control-allow-origin');
      res.removeHeader('vary');
      const headers = compiled.actual(o);
      if (headers) for (let i = 0; i < headers.length; i += 2) res.setHeader(headers[i] as string, headers[i + 1] as string);
    },
    origin,
  );
}
if (sink === 0) throw new Error('unreachable: keeps the loop bodies from being optimised away');
