import type { UpstreamError, UpstreamPool, UpstreamRequest } from '../../src/proxy/upstream/client.ts';

/** How one request through the upstream client ended: the status and the whole body, or the error. */
export interface UpstreamOutcome {
  readonly status?: number;
  readonly body?: string;
  readonly error?: UpstreamError;
}

/** Sends `request` through `pool` and collects the response (the client's handler API, as the proxy drives it). */
export function collectUpstream(pool: UpstreamPool, request: UpstreamRequest): Promise<UpstreamOutcome> {
  return new Promise((resolve) => {
    let status = 0;
    const chunks: Buffer[] = [];
    pool.request(request, {
      onResponseStart: (head) => {
        status = head.status;
      },
      onResponseData: (chunk) => {
        chunks.push(Buffer.from(chunk));
        return true;
      },
      onResponseEnd: () => resolve({ status, body: Buffer.concat(chunks).toString() }),
      onResponseError: (error) => resolve({ error }),
    });
  });
}
