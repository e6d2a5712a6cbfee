import { expect } from 'vitest';
import { send, type RawResponse } from './backends.ts';

/**
 * One /api request as a browser page (or a forger) would send it: `cookie` in Cookie, the `headers` given, and
 * for a method with a body a small JSON one.
 */
export function apiCall(
  baseUrl: string,
  options: { method?: string; path?: string; cookie?: string; headers?: readonly string[]; body?: string; contentType?: string },
): Promise<RawResponse> {
  const method = options.method ?? 'POST';
  const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
  return send(baseUrl, {
    method,
    path: options.path ?? '/api/orders',
    headers: [
      ...(options.cookie !== undefined ? ['Cookie', options.cookie] : []),
      ...(hasBody ? ['Content-Type', options.contentType ?? 'application/json'] : []),
      ...(options.headers ?? []),
    ],
    ...(hasBody ? { body: options.body ?? '{"a":1}' } : {}),
  });
}

/** Every `access-control-*` header of an answer, by lowercase name. */
export function corsHeaders(res: RawResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    const name = (res.rawHeaders[i] as string).toLowerCase();
    if (name.startsWith('access-control-')) out[name] = res.rawHeaders[i + 1] as string;
  }
  return out;
}

/** The Vary values of an answer, split and lowercased. */
export function varyOf(res: RawResponse): string[] {
  const out: string[] = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2)
    if ((res.rawHeaders[i] as string).toLowerCase() === 'vary')
      out.push(...(res.rawHeaders[i + 1] as string).split(',').map((v) => v.trim().toLowerCase()));
  return out;
}

/** An answer that lets `origin` read it with credentials, and says it varies with Origin. */
export function expectCorsFor(res: RawResponse, origin: string): void {
  const cors = corsHeaders(res);
  expect(cors['access-control-allow-origin']).toBe(origin);
  expect(cors['access-control-allow-credentials']).toBe('true');
  expect(varyOf(res)).toContain('origin');
}

/** An answer with no CORS header at all (never `*`, never a reflected or `null` origin). */
export function expectNoCors(res: RawResponse): void {
  expect(corsHeaders(res)).toEqual({});
}
