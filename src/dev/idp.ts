import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';

export interface DevClient {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly redirectUris: readonly string[];
  readonly postLogoutRedirectUris: readonly string[];
  readonly backchannelLogoutUri?: string;
}

export interface DevIdpOptions {
  readonly issuer: string;
  readonly clients: readonly DevClient[];
  /** Access token lifetime in seconds (short values drive refresh tests). */
  readonly accessTokenTtlSeconds?: number;
  /** Issue access tokens as JWTs (needed for jti revocation and bearer clients), audience = this value. */
  readonly jwtAccessTokenAudience?: string;
  readonly rotateRefreshTokens?: boolean;
  /**
   * Issue a refresh token to every client allowed the grant, not only after prompt=consent (oidc-provider keeps
   * offline_access only then): `npm start`'s first login is one form, no consent screen. Off for test IdPs, which
   * keep oidc-provider's own rule.
   */
  readonly refreshTokensWithoutConsent?: boolean;
  /** Private signing keys (JWK); default: oidc-provider's development keys. */
  readonly jwks?: { keys: Array<Record<string, unknown>> };
  /** Claims for particular users over the defaults (tests: `email_verified: false`, `groups`, a name like José). */
  readonly accounts?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

export interface DevIdp {
  readonly issuer: string;
  readonly callback: (req: IncomingMessage, res: ServerResponse) => void;
  /** The oidc-provider instance, for tests that listen to its events. */
  readonly provider: Provider;
}

/**
 * A real OpenID Provider (the oidc-provider package) with its development login form: any username is
 * accepted. For `npm start` without configuration and for tests; loaded dynamically and never in production.
 */
export async function createDevIdp(options: DevIdpOptions): Promise<DevIdp> {
  if (process.env['NODE_ENV'] === 'production') throw new Error('the dev IdP never runs in production');
  const { default: Provider } = await import('oidc-provider');
  const audience = options.jwtAccessTokenAudience;
  const provider = new Provider(options.issuer, {
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      redirect_uris: [...c.redirectUris],
      post_logout_redirect_uris: [...c.postLogoutRedirectUris],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...(c.backchannelLogoutUri ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    })),
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          const defaults = { sub: id, email: `${id}@example.test`, email_verified: true, name: id.charAt(0).toUpperCase() + id.slice(1) };
          return { ...defaults, ...options.accounts?.[id], sub: id };
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      ...(audience
        ? {
            resourceIndicators: {
              enabled: true,
              defaultResource: () => audience,
              useGrantedResource: () => true,
              getResourceServerInfo: () => ({
                scope: 'openid profile email offline_access',
                audience,
                accessTokenFormat: 'jwt',
                accessTokenTTL: options.accessTokenTtlSeconds ?? 3600,
              }),
            },
          }
        : {}),
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: options.accessTokenTtlSeconds ?? 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 86400,
      Grant: 86400 * 14,
      RefreshToken: 86400 * 14,
      AuthorizationCode: 60,
    },
    rotateRefreshToken: () => options.rotateRefreshTokens ?? true,
    // oidc-provider keeps offline_access (and so the refresh token) only when the login asked for prompt=consent,
    // which shows a consent screen on every login. For npm start the refresh token goes to any client allowed the
    // grant instead, so a first login is one form; one that outlives the IdP session, as offline_access would.
    ...(options.refreshTokensWithoutConsent
      ? {
          issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
            client.grantTypeAllowed('refresh_token'),
          expiresWithSession: () => false,
        }
      : {}),
    cookies: {
      keys: ['gatehouse-dev-idp-cookie-key-not-secret'],
      // Mounted inside Gatehouse (npm start), the IdP's session cookie must stay under its own path: at Path=/ the
      // browser sends it with every /api call, and backends would see the IdP's session next to the app's requests.
      long: { httpOnly: true, sameSite: 'lax', path: new URL(options.issuer).pathname.replace(/\/$/, '') || '/' },
    },
    ...(options.jwks ? { jwks: options.jwks as never } : {}),
    // oidc-provider refuses outgoing calls to special-use addresses (SSRF guard); the dev IdP's only
    // outgoing calls are back-channel logouts to a Gatehouse on loopback, so that guard is lifted here.
    fetch: (url: string | URL | Request, init?: RequestInit) => globalThis.fetch(url, { ...init, dispatcher: undefined } as RequestInit),
    // Dev convenience: skip the consent screen by granting what was asked (a real IdP shows it).
    async loadExistingGrant(ctx) {
      const existingId = ctx.oidc.session?.grantIdFor(ctx.oidc.client!.clientId);
      if (existingId) {
        const found = await ctx.oidc.provider.Grant.find(existingId);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
      grant.addOIDCScope('openid profile email offline_access');
      if (audience) grant.addResourceScope(audience, 'openid profile email offline_access');
      await grant.save();
      return grant;
    },
  });
  provider.proxy = true;
  return { issuer: options.issuer, callback: provider.callback(), provider };
}
