/**
 * The environment contract: names, types, defaults and descriptions in one place.
 * docs/config.md and README.md describe these same entries; a test checks they list every name.
 */
export const ENV_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    NODE_ENV: {
      enum: ['development', 'production', 'test'],
      default: 'development',
      description: 'production refuses the dev IdP and the in-memory store.',
    },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080, description: 'Listening port.' },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0', description: 'Listening address.' },
    APP_BASE_URL: {
      type: 'string',
      format: 'base-url',
      description:
        'External URL of Gatehouse (scheme, host, port; no path). Required unless in dev mode, where it defaults to http://localhost:PORT.',
    },
    OIDC_ISSUER: {
      type: 'string',
      format: 'http-url',
      description: 'Issuer URL; endpoints come from its discovery document. Unset outside production: the embedded dev IdP.',
    },
    OIDC_CLIENT_ID: { type: 'string', minLength: 1, description: 'Client id at the IdP. Required with OIDC_ISSUER.' },
    OIDC_CLIENT_SECRET: {
      type: 'string',
      minLength: 1,
      description: 'Client secret (client_secret_basic). Unset: a public client (PKCE only).',
    },
    OIDC_SCOPES: {
      type: 'string',
      pattern: '(^| )openid( |$)',
      default: 'openid profile email offline_access',
      description: 'Space-separated scopes; must include openid. offline_access asks for a refresh token.',
    },
    OIDC_REDIRECT_PATH: {
      type: 'string',
      pattern: '^/[A-Za-z0-9._~/-]*$',
      default: '/auth/callback',
      description: 'Path of the redirect URI (APP_BASE_URL + this).',
    },
    OIDC_POST_LOGOUT_REDIRECT_PATH: {
      type: 'string',
      pattern: '^/[A-Za-z0-9._~/-]*$',
      default: '/',
      description: 'Where the IdP sends the browser after RP-initiated logout (APP_BASE_URL + this).',
    },
    OIDC_PROMPT: {
      type: 'string',
      pattern: '^(none|login|consent|select_account)( (none|login|consent|select_account))*$',
      description:
        'prompt sent with every login. Some IdPs (oidc-provider among them) issue a refresh token for offline_access ' +
        'only with prompt=consent.',
    },
    OIDC_AUTHORIZATION_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered authorization endpoint.' },
    OIDC_TOKEN_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered token endpoint.' },
    OIDC_USERINFO_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered userinfo endpoint.' },
    OIDC_JWKS_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered jwks_uri.' },
    OIDC_END_SESSION_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered end_session_endpoint.' },
    OIDC_REVOCATION_ENDPOINT: { type: 'string', format: 'http-url', description: 'Overrides the discovered revocation_endpoint.' },
    OIDC_ID_TOKEN_SIGNING_ALG: {
      enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
      default: 'RS256',
      description: 'The only algorithm accepted on ID tokens (never none, never HMAC).',
    },
    OIDC_HTTP_TIMEOUT_SECONDS: {
      type: 'integer',
      minimum: 1,
      maximum: 120,
      default: 10,
      description:
        'Timeout of each call to the IdP, and how long a request whose access token has expired waits for its refresh. ' +
        'A refresh token grant itself runs up to max(30, 3 × this) seconds: one that may have reached the IdP is never abandoned.',
    },
    OIDC_ALLOW_INSECURE_ISSUER: {
      type: 'boolean',
      default: false,
      description: 'Allow an http:// issuer that is not on loopback. Tokens then cross the network in clear.',
    },
    TOKEN_REFRESH_SKEW_SECONDS: {
      type: 'integer',
      minimum: 0,
      maximum: 3600,
      default: 60,
      description: 'Refresh the access token when it expires within this many seconds.',
    },
    ID_TOKEN_MAX_AGE_SECONDS: { type: 'integer', minimum: 0, description: 'Sent as max_age; auth_time is then checked.' },
    API_AUDIENCE: {
      type: 'string',
      minLength: 1,
      description: 'Audience (aud) that bearer access tokens must carry. Unset: /api accepts no bearer tokens, only sessions.',
    },
    API_TOKEN_ALGORITHMS: {
      type: 'string',
      pattern:
        '^(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA)(,(RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA))*$',
      default: 'RS256,PS256,ES256,EdDSA',
      description: 'Comma-separated signature algorithms accepted on bearer tokens (asymmetric only).',
    },
    TOKEN_CLOCK_TOLERANCE_SECONDS: {
      type: 'integer',
      minimum: 0,
      maximum: 300,
      default: 30,
      description: 'Leeway for exp/nbf on bearer tokens.',
    },
    REDIS_URL: {
      type: 'string',
      pattern: '^rediss?://',
      description: 'redis:// or rediss:// URL (password, db). Unset: in-memory store (refused in production).',
    },
    REDIS_KEY_PREFIX: {
      type: 'string',
      pattern: '^[A-Za-z0-9:_-]{1,32}$',
      default: 'gh:',
      description: 'Prefix of every key Gatehouse writes.',
    },
    SESSION_COOKIE_NAME: {
      type: 'string',
      pattern: '^[A-Za-z0-9_-]{1,64}$',
      default: 'gh_session',
      description: 'Cookie name; __Host- is prepended when the cookie is Secure and has no Domain.',
    },
    SESSION_COOKIE_SECURE: {
      type: 'boolean',
      description: 'Secure attribute. Default true (in dev mode: true only when APP_BASE_URL is https).',
    },
    SESSION_COOKIE_SAMESITE: { enum: ['Strict', 'Lax', 'None'], default: 'Lax', description: 'SameSite attribute. None requires Secure.' },
    SESSION_COOKIE_DOMAIN: {
      type: 'string',
      pattern: '^\\.?[A-Za-z0-9.-]+$',
      description: 'Domain attribute (shares the cookie with subdomains; drops the __Host- prefix).',
    },
    SESSION_IDLE_TTL_SECONDS: { type: 'integer', minimum: 1, default: 28800, description: 'Idle timeout, rolled forward on use.' },
    SESSION_MAX_AGE_SECONDS: { type: 'integer', minimum: 1, default: 604800, description: 'Absolute session lifetime; never extended.' },
    GATEHOUSE_CONFIG: { type: 'string', minLength: 1, default: './config.yml', description: 'Path of config.yml.' },
    ALLOWED_ORIGINS: { type: 'string', description: 'Comma-separated origins, merged with allowedOrigins from config.yml.' },
    ADMIN_TOKEN: {
      type: 'string',
      minLength: 32,
      description: 'Secret for the X-Admin-Token header (at least 32 characters). Unset: the admin API does not exist.',
    },
    NOTIFY_WEBHOOK_URL: {
      type: 'string',
      format: 'http-url',
      description:
        'Where a backend that stays down past its healthCheck.notifyAfterSeconds, and its recovery, are POSTed as one JSON event ' +
        '(once per cluster, agreed through Redis). Unset: no notifications.',
    },
    NOTIFY_WEBHOOK_SECRET: {
      type: 'string',
      minLength: 16,
      description:
        'HMAC-SHA256 key for notifications: X-Gatehouse-Signature is sha256=<hex of HMAC(timestamp + "." + body)>, ' +
        'the timestamp in X-Gatehouse-Timestamp. Unset: unsigned.',
    },
    LOG_LEVEL: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino log level.' },
    ACCESS_LOG: {
      enum: ['all', 'errors', 'off'],
      default: 'all',
      description:
        'Per-request log line for /api: every request, only those answered with status >= 400 (and aborted ones), or none. ' +
        'One line costs about 7 µs of CPU (docs/performance.md).',
    },
    WS_MAX_PER_IDENTITY: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: 100,
      description: 'Open WebSockets one session (or one bearer subject) may hold; more upgrades get 429.',
    },
    TRUST_PROXY: {
      type: 'string',
      // Its forms are checked by parseTrustProxy in load.ts, whose message lists them (a pattern's would not).
      default: 'false',
      description: 'Which peers may set X-Forwarded-*: false, a hop count, or comma-separated IPs/CIDRs. Never "true".',
    },
    REQUEST_TIMEOUT_SECONDS: {
      type: 'integer',
      minimum: 0,
      maximum: 86400,
      default: 300,
      description: 'Longest time a client may take to send a whole request (headers and body); 0: no limit. Raise it for long uploads.',
    },
    PUBLIC_DIR: {
      type: 'string',
      minLength: 1,
      description:
        "Directory of your SPA's build (it must hold index.html), served at /: index.html for navigations, " +
        'hashed assets cached as immutable. Unset: the demo page in development, no page at all in production.',
    },
    SHUTDOWN_TIMEOUT_MS: {
      type: 'integer',
      minimum: 0,
      maximum: 600000,
      default: 10000,
      description: 'How long in-flight requests may run once the drain begins (after SHUTDOWN_DELAY_SECONDS).',
    },
    SHUTDOWN_DELAY_SECONDS: {
      type: 'integer',
      minimum: 0,
      maximum: 300,
      default: 5,
      description:
        'After SIGTERM: how long /readyz answers 503 while connections are still served, before the listener closes and the drain begins. 0: drain at once.',
    },
    DEV_BACKEND_PORT: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      default: 4070,
      description: 'Dev mode: port of the demo backend on 127.0.0.1 (another free port if taken).',
    },
  },
} as const;

export type EnvName = keyof typeof ENV_SCHEMA.properties;
export const ENV_NAMES = Object.keys(ENV_SCHEMA.properties) as EnvName[];
