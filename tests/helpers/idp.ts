import type { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDevIdp, type DevIdp, type DevIdpOptions } from '../../src/dev/idp.ts';

export interface TestIdp {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly provider: DevIdp['provider'];
  /** Counts of provider events since start (grant.success, grant.error, refresh_token.consumed, ...). */
  readonly events: Map<string, number>;
  /** Stops answering (connections refused) until start() is called again. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const COUNTED = [
  'grant.success',
  'grant.error',
  'refresh_token.consumed',
  'refresh_token.saved',
  'grant.revoked',
  'end_session.success',
  'backchannel.success',
  'backchannel.error',
  'userinfo.error',
  'access_token.destroyed',
  'refresh_token.destroyed',
];

/**
 * A real oidc-provider on 127.0.0.1 with one confidential client whose redirect URI is `gatehouseBaseUrl`/auth/callback.
 */
export async function startIdp(options: {
  gatehouseBaseUrls: readonly string[];
  /** The loopback address to serve on (default 127.0.0.1): another one puts the IdP on another site, as a real IdP is. */
  host?: string;
  accessTokenTtlSeconds?: number;
  jwtAccessTokenAudience?: string;
  rotateRefreshTokens?: boolean;
  backchannelLogoutPath?: string;
  /** Private JWKs the IdP signs with (so a test can also sign hostile tokens with the real key). */
  jwks?: { keys: Array<Record<string, unknown>> };
  /** Claims for particular users over the dev IdP's defaults (DevIdpOptions.accounts). */
  accounts?: DevIdpOptions['accounts'];
  /** A forwarder (pausable-forwarder.ts) that fronts the IdP: the issuer is its URL, so every call to the IdP goes through it. */
  behind?: { readonly url: string; setTarget(port: number): void };
}): Promise<TestIdp> {
  // oxlint-disable-next-line prefer-const -- assigned once the IdP exists, which needs this server's port first
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let server: Server = createServer((req, res) => handler?.(req, res));
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as AddressInfo;
  options.behind?.setTarget(port);
  const issuer = options.behind?.url ?? `http://${host}:${port}`;
  const clientId = 'gatehouse-test';
  const clientSecret = 'gatehouse-test-secret-0123456789abcdef';
  const opts: DevIdpOptions = {
    issuer,
    clients: options.gatehouseBaseUrls.map((base, i) => ({
      clientId: i === 0 ? clientId : `${clientId}-${i}`,
      clientSecret,
      redirectUris: [`${base}/auth/callback`],
      postLogoutRedirectUris: [`${base}/`],
      ...(options.backchannelLogoutPath ? { backchannelLogoutUri: base + options.backchannelLogoutPath } : {}),
    })),
    ...(options.accessTokenTtlSeconds !== undefined ? { accessTokenTtlSeconds: options.accessTokenTtlSeconds } : {}),
    ...(options.jwtAccessTokenAudience ? { jwtAccessTokenAudience: options.jwtAccessTokenAudience } : {}),
    ...(options.rotateRefreshTokens !== undefined ? { rotateRefreshTokens: options.rotateRefreshTokens } : {}),
    ...(options.jwks ? { jwks: options.jwks } : {}),
    ...(options.accounts ? { accounts: options.accounts } : {}),
  };
  const idp = await createDevIdp(opts);
  handler = idp.callback;
  const events = new Map<string, number>();
  const emitter = idp.provider as unknown as EventEmitter;
  for (const name of COUNTED) emitter.on(name, () => events.set(name, (events.get(name) ?? 0) + 1));
  const stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    issuer,
    clientId,
    clientSecret,
    provider: idp.provider,
    events,
    stop,
    async start() {
      server = createServer((req, res) => handler?.(req, res));
      await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
    },
    close: async () => {
      if (server.listening) await stop();
    },
  };
}
