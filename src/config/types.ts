export type AuthPolicy = 'required' | 'optional' | 'none';

/** A value `requireClaims` compares a claim with. */
export type ClaimScalar = string | number | boolean;

/** One entry of a mapping's `rules` (route-table.ts compiles it; the first match for a request wins). */
export interface RouteRuleConfig {
  /** `path`: the pattern language of policy/path-pattern.ts; `methods` omitted: any method. */
  readonly match: { readonly path: string; readonly methods?: readonly string[] };
  readonly auth?: AuthPolicy;
  /** Allowlist: any other method is 405 with `Allow`. */
  readonly methods?: readonly string[];
  /** Every claim named must match one of its values (a list: any of them). */
  readonly requireClaims?: Readonly<Record<string, ClaimScalar | readonly ClaimScalar[]>>;
  readonly emailDomains?: readonly string[];
  /** The rule's own /api limit (a bucket of its own); `false`: none; omitted: the mapping's. */
  readonly rateLimit?: RateLimitSetting;
}

/** How identity header values that are not printable ASCII are written (headers.ts). */
export type IdentityHeaderEncoding = 'rfc8187' | 'percent';

/** A request header that must be present with exactly this value (Duende BFF's `X-CSRF: 1`). */
export interface CsrfHeader {
  readonly name: string;
  /** Default "1". */
  readonly value?: string;
}

/** Top-level `csrf`: the defaults every mapping's CSRF check starts from. */
export interface CsrfConfig {
  readonly requireHeader?: CsrfHeader;
}

/** Per mapping `csrf`: `requireHeader: false` turns the top-level header off for this mapping. */
export interface MappingCsrfConfig {
  readonly requireHeader?: CsrfHeader | false;
  readonly allowMissingOrigin?: boolean;
}

/** Per mapping `cors`: replaces what the mapping would get from `allowedOrigins` and the built-in lists. */
export interface MappingCorsConfig {
  readonly origins?: readonly string[];
  readonly allowedHeaders?: readonly string[];
  readonly exposedHeaders?: readonly string[];
  readonly maxAgeSeconds?: number;
}
/** Requests per fixed window, plus `burst` more per ten windows (config.schema.json `definitions/rateLimit`). */
export interface RateLimitConfig {
  readonly requests: number;
  readonly windowSeconds: number;
  readonly burst: number;
}

/** A limit, or `false`: none here (nor inherited from the level above). */
export type RateLimitSetting = RateLimitConfig | false;

export interface MappingConfig {
  readonly frontendHost: string;
  readonly frontendPort?: number;
  readonly pathPrefix?: string;
  readonly backend: string;
  readonly auth: AuthPolicy;
  readonly timeoutMs: number;
  readonly websocket: boolean;
  readonly forwardAccessToken: boolean;
  readonly passAuthorization: boolean;
  readonly identityHeaders?: Readonly<Record<string, string>>;
  /** Send headers mapped from `email` even when the IdP has not said `email_verified: true`. */
  readonly sendUnverifiedEmail?: boolean;
  readonly identityHeaderEncoding?: IdentityHeaderEncoding;
  readonly rules?: readonly RouteRuleConfig[];
  readonly csrf?: MappingCsrfConfig;
  readonly cors?: MappingCorsConfig;
  /** Overrides rateLimits.api for this mapping; `false` switches it off here. */
  readonly rateLimit?: RateLimitSetting;
  readonly healthCheck?: HealthCheckConfig;
  readonly fallback?: string;
  readonly circuitBreaker?: CircuitBreakerConfig;
  readonly maxConcurrent?: number;
  readonly maxStreams?: number;
  /** Only the endpoints the top-level schemas declare exist on this mapping (404/405 for the rest). */
  readonly strictSchemas?: boolean;
}

/** A mapping's active health check (config.schema.json fills every default when the object is present). */
export interface HealthCheckConfig {
  readonly path: string;
  readonly method: 'GET' | 'HEAD' | 'OPTIONS';
  readonly intervalSeconds: number;
  readonly timeoutMs: number;
  /** Exact codes (204) or classes ('2xx'). */
  readonly healthyStatuses: ReadonlyArray<string | number>;
  readonly unhealthyAfter: number;
  readonly healthyAfter: number;
  readonly notifyAfterSeconds: number;
}

export interface CircuitBreakerConfig {
  readonly failures: number;
  readonly windowSeconds: number;
  readonly cooldownSeconds: number;
}

/** Claim name → the value it must have, or the values one of which it must have (an array claim: contain). */
export type RequiredClaims = Readonly<Record<string, string | readonly string[]>>;
/** A JSON Schema as config.yml gives it (after load, a `$ref` to a file is replaced by the file's content). */
export type JsonSchemaObject = Readonly<Record<string, unknown>>;

/** One top-level `schemas` entry: the checks a request matching its method and path must pass. */
export interface SchemaEntryConfig {
  readonly method?: string;
  readonly methods?: readonly string[];
  /** Path pattern after /api (policy/path-pattern.ts). */
  readonly path: string;
  readonly body?: JsonSchemaObject;
  readonly query?: JsonSchemaObject;
  readonly maxBodyBytes: number;
}

export interface FileConfig {
  readonly defaultBackend?: string;
  readonly allowedOrigins: readonly string[];
  readonly csrf?: CsrfConfig;
  readonly mappings: readonly MappingConfig[];
  /** Operators authorised by their session's claims (besides X-Admin-Token). */
  readonly admin?: { readonly requireClaims?: RequiredClaims };
  /** /auth/* per client IP (default 60 per minute) and /api/* per session, bearer subject or client IP (default none). */
  readonly rateLimits?: { readonly auth?: RateLimitSetting; readonly api?: RateLimitSetting };
  readonly schemas?: readonly SchemaEntryConfig[];
}

export type TrustProxy =
  | { readonly kind: 'none' }
  | { readonly kind: 'hops'; readonly hops: number }
  | { readonly kind: 'addresses'; readonly list: readonly string[] };

export interface OidcEndpointOverrides {
  readonly authorization_endpoint?: string;
  readonly token_endpoint?: string;
  readonly userinfo_endpoint?: string;
  readonly jwks_uri?: string;
  readonly end_session_endpoint?: string;
  readonly revocation_endpoint?: string;
}

export interface Config {
  readonly server: {
    readonly port: number;
    readonly host: string;
    readonly baseUrl: string;
    /** scheme://host[:port] of baseUrl. */
    readonly origin: string;
    readonly trustProxy: TrustProxy;
    readonly shutdownTimeoutMs: number;
    /** SIGTERM → this long not ready but serving, so the load balancer stops sending before the listener closes. */
    readonly shutdownDelayMs: number;
    readonly requestTimeoutMs: number;
    /** The SPA served at / (PUBLIC_DIR, or the demo page outside production); undefined: none. */
    readonly publicDir: string | undefined;
  };
  readonly oidc: {
    readonly issuer: string;
    readonly clientId: string;
    readonly clientSecret?: string;
    readonly scopes: string;
    readonly prompt?: string;
    readonly redirectPath: string;
    readonly redirectUri: string;
    readonly postLogoutRedirectUri: string;
    readonly endpoints: OidcEndpointOverrides;
    readonly idTokenSigningAlg: string;
    readonly httpTimeoutSeconds: number;
    readonly allowInsecureIssuer: boolean;
    readonly refreshSkewSeconds: number;
    readonly idTokenMaxAgeSeconds?: number;
  };
  readonly redis: { readonly url?: string; readonly keyPrefix: string };
  /** Bearer access tokens on /api for non-browser clients; absent when API_AUDIENCE is unset. */
  readonly bearer?: {
    readonly audience: string;
    readonly algorithms: readonly string[];
    readonly clockToleranceSeconds: number;
  };
  readonly session: {
    /** Final cookie name, with the __Host- prefix when it applies. */
    readonly cookieName: string;
    readonly secure: boolean;
    readonly sameSite: 'Strict' | 'Lax' | 'None';
    readonly domain?: string;
    readonly idleTtlSeconds: number;
    readonly maxAgeSeconds: number;
  };
  readonly adminToken?: string;
  /**
   * Where GET /metrics is served: on its own listener when `port` is set (no credentials), else on the main port
   * behind the admin token; `enabled` false (no METRICS_PORT, no ADMIN_TOKEN) means nowhere, and nothing is counted.
   */
  readonly metrics: { readonly enabled: boolean; readonly port?: number; readonly host: string };
  readonly accessLog: 'all' | 'errors' | 'off';
  readonly websocketMaxPerIdentity: number;
  /** Where backend down/recovered events are POSTed (NOTIFY_WEBHOOK_URL), HMAC-signed when a secret is set. */
  readonly notify?: { readonly url: string; readonly secret?: string };
  /** config.yml, with ALLOWED_ORIGINS merged into allowedOrigins. */
  readonly routing: FileConfig;
}
