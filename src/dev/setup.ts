import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import { startDemoBackend, type DemoBackend } from './backend.ts';
import { createDevIdp } from './idp.ts';

export const DEV_IDP_PATH = '/dev-idp';
export const DEV_CLIENT_ID = 'gatehouse-dev';
const DEV_CLIENT_SECRET = 'gatehouse-dev-secret-not-for-production';

export interface DevSetup {
  /** Environment entries the rest of start-up reads as if an operator had set them. */
  readonly env: Record<string, string>;
  readonly mount: { readonly path: string; readonly handler: (req: IncomingMessage, res: ServerResponse) => void };
  readonly backend: DemoBackend;
  close(): Promise<void>;
}

/** The environment the dev setup gives start-up for its IdP (also what `gatehouse check` assumes in dev mode). */
export function devEnv(baseUrl: string): Record<string, string> {
  return {
    OIDC_ISSUER: baseUrl + DEV_IDP_PATH,
    OIDC_CLIENT_ID: DEV_CLIENT_ID,
    OIDC_CLIENT_SECRET: DEV_CLIENT_SECRET,
    OIDC_PROMPT: 'consent',
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
    mount: { path: DEV_IDP_PATH, handler: idp.callback },
    backend,
    close: () => backend.close(),
  };
}
