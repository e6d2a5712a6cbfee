import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import { startDemoBackend, type DemoBackend } from './backend.ts';
import { createDevIdp } from './idp.ts';

export const DEV_IDP_PATH = '/dev-idp';
export const DEV_CLIENT_ID = 'gatehouse-dev';
const DEV_CLIENT_SECRET = 'gatehouse-dev-secret-not-for-production';

type Handler = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

export interface DevSetup {
  /** Environment entries the rest of start-up reads as if an operator had set them. */
  readonly env: Record<string, string>;
  /** Handlers mounted ahead of Gatehouse's own routes, in order: the foreign-host redirect, then the IdP. */
  readonly mounts: ReadonlyArray<{ readonly path: string; readonly handler: Handler }>;
  readonly backend: DemoBackend;
  close(): Promise<void>;
}

/** The environment the dev setup gives start-up for its IdP (also what `gatehouse check` assumes in dev mode). */
export function devEnv(baseUrl: string): Record<string, string> {
  return {
    OIDC_ISSUER: baseUrl + DEV_IDP_PATH,
    OIDC_CLIENT_ID: DEV_CLIENT_ID,
    OIDC_CLIENT_SECRET: DEV_CLIENT_SECRET,
  };
}

/**
 * Development mode only: a page opened on another host than the base URL's (127.0.0.1:8080 when the base URL is
 * localhost:8080) is sent to the base URL first. A login started there could never finish: its binding cookie
 * would belong to the other host, while the IdP returns to the base URL's callback. Production keeps its answer
 * (the callback refuses with invalid_state and its page links to the base URL), since behind a proxy the Host
 * Gatehouse sees need not be the one the browser used. Only GET and HEAD are moved, and /healthz and /readyz
 * are answered before this runs, so probes and scripts on 127.0.0.1 are untouched.
 */
export function foreignHostRedirect(baseUrl: string): Handler {
  const base = new URL(baseUrl);
  return (req, res, next) => {
    const host = req.headers.host?.toLowerCase();
    if ((req.method !== 'GET' && req.method !== 'HEAD') || host === undefined || host === base.host || !req.url?.startsWith('/')) {
      next();
      return;
    }
    res.statusCode = 302;
    res.setHeader('location', base.origin + req.url);
    res.setHeader('cache-control', 'no-store');
    res.end();
  };
}

/**
 * `npm start` with no OIDC_ISSUER: the embedded IdP (served by Gatehouse itself under /dev-idp, so one port
 * is all a newcomer needs) and the demo backend. Never called in production (main.ts and createDevIdp both refuse).
 */
export async function startDevSetup(options: { baseUrl: string; backendPort: number; log: Logger }): Promise<DevSetup> {
  let backend: DemoBackend;
  try {
    backend = await startDemoBackend({ port: options.backendPort });
  } catch {
    backend = await startDemoBackend({ port: 0 });
  }
  const issuer = options.baseUrl + DEV_IDP_PATH;
  const idp = await createDevIdp({
    issuer,
    refreshTokensWithoutConsent: true,
    clients: [
      {
        clientId: DEV_CLIENT_ID,
        clientSecret: DEV_CLIENT_SECRET,
        redirectUris: [`${options.baseUrl}/auth/callback`],
        postLogoutRedirectUris: [`${options.baseUrl}/`],
      },
    ],
  });
  idp.provider.on('server_error', (_ctx: unknown, err: Error) => options.log.error({ err }, 'dev IdP error'));
  return {
    env: { ...devEnv(options.baseUrl), DEMO_BACKEND_URL: backend.url },
    mounts: [
      { path: '/', handler: foreignHostRedirect(options.baseUrl) },
      { path: DEV_IDP_PATH, handler: idp.callback },
    ],
    backend,
    close: () => backend.close(),
  };
}
