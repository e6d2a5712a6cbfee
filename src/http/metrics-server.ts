import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { GatehouseError, sendError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/** Answers GET (and HEAD) /metrics with the Prometheus text exposition; used by both listeners. */
export async function serveMetrics(metrics: Metrics, method: string, res: ServerResponse): Promise<void> {
  const { contentType, body } = await metrics.render();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(method === 'HEAD' ? undefined : body);
}

/**
 * The METRICS_PORT listener: GET /metrics and nothing else, without credentials (it is meant for the cluster network,
 * where Prometheus scrapes, never the internet). Everything else is a JSON 404 or 405, like the main port's.
 */
export function createMetricsServer(metrics: Metrics, log: Logger): Server {
  return createServer({ headersTimeout: 10_000, requestTimeout: 10_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') return sendError(res, new GatehouseError('not_found'));
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendError(res, new GatehouseError('method_not_allowed', { headers: ['Allow', 'GET, HEAD'] }));
    serveMetrics(metrics, req.method, res).catch((err: unknown) => {
      log.error({ err }, 'metrics could not be rendered');
      if (!res.headersSent) sendError(res, new GatehouseError('internal_error'));
      else res.destroy();
    });
  });
}
