import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import type { ValidateFunction } from 'ajv';
import { ConfigError } from '../errors.ts';
import { ENV_NAMES, ENV_SCHEMA, type EnvName } from './env-schema.ts';
import type { Config, FileConfig, MappingConfig, TrustProxy } from './types.ts';
import { resolveSchemaRefs } from './schema-refs.ts';
import { compileSchema, describeErrors } from './validate.ts';

type Env = Readonly<Record<string, string | undefined>>;
type ParsedEnv = { [K in EnvName]?: string | number | boolean };

export interface LoadOptions {
  /** Set by main.ts after it started the embedded dev IdP and demo backend. */
  readonly devMode?: boolean;
  readonly readFile?: (path: string) => string;
}

const FILE_SCHEMA: object = JSON.parse(readFileSync(new URL('../../config.schema.json', import.meta.url), 'utf8'));

/**
 * The two validators, compiled on first use and kept: compiling them took 40–200 ms of blocked event loop, which
 * every reload paid (SIGHUP, an admin PUT, and each replica hearing of it) while it proxied. Both are pure functions
 * of constant schemas; ajv's `errors` is read right after each synchronous call.
 */
let fileValidator: ValidateFunction<FileConfig> | undefined;
let envValidator: ValidateFunction<ParsedEnv> | undefined;

/** True when this environment asks for the embedded dev setup (no issuer, not production). */
export function wantsDevSetup(env: Env): boolean {
  return !env['OIDC_ISSUER'] && env['NODE_ENV'] !== 'production';
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

function parseEnv(env: Env, problems: string[]): ParsedEnv {
  const raw: Record<string, string> = {};
  for (const name of ENV_NAMES) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const validate = (envValidator ??= compileSchema<ParsedEnv>(ENV_SCHEMA, { coerceTypes: true }));
  const parsed: Record<string, unknown> = { ...raw };
  for (const name of ['SESSION_COOKIE_SECURE', 'OIDC_ALLOW_INSECURE_ISSUER'] as const) {
    // ajv's coercion takes only 'true'/'false'; a typo like 'ture' must fail, not silently be false.
    if (name in parsed && !/^(true|false)$/.test(raw[name] ?? '')) {
      problems.push(`env ${name}: must be true or false`);
      delete parsed[name];
    }
  }
  if (!validate(parsed)) problems.push(...describeErrors('env', validate.errors, 'name'));
  return parsed as ParsedEnv;
}

/** Replaces ${NAME} and ${NAME:-default} in string scalars (never in keys), so secrets and hosts can come from the environment. */
function interpolate(value: unknown, env: Env, path: string, problems: string[], source: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push(`${source} ${path || '(root)'}: refers to \${${name}}, which is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}/${i}`, problems, source));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    // Defined, not assigned: `out['__proto__'] = v` would make v the prototype, and a mapping inheriting
    // `auth: none` from it passes the schema (ADM-PROTO). As an own property it is an unknown field like any other.
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, {
        value: interpolate(v, env, `${path}/${k}`, problems, source),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  }
  return value;
}

function checkMappings(file: FileConfig, source: string, problems: string[]): void {
  const seen = new Map<string, number>();
  file.mappings.forEach((m: MappingConfig, i) => {
    const key = `${m.frontendHost.toLowerCase()}|${m.frontendPort ?? '*'}|${(m.pathPrefix ?? '').toLowerCase()}`;
    const earlier = seen.get(key);
    if (earlier !== undefined)
      problems.push(`${source} /mappings/${i}: same frontendHost, frontendPort and pathPrefix as /mappings/${earlier}`);
    else seen.set(key, i);
    if (m.pathPrefix && m.pathPrefix.split('/').some((s) => s === '.' || s === '..')) {
      problems.push(`${source} /mappings/${i}/pathPrefix: must not contain . or .. segments`);
    }
    const host = m.frontendHost;
    if (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6)
      problems.push(`${source} /mappings/${i}/frontendHost: not a valid IPv6 literal`);
    for (const header of Object.keys(m.identityHeaders ?? {})) {
      if (header === 'x-forwarded-for' || header === 'x-forwarded-proto' || header === 'x-forwarded-host' || header === 'x-request-id') {
        problems.push(`${source} /mappings/${i}/identityHeaders/${header}: is set by Gatehouse itself`);
      }
    }
  });
}

/**
 * Header names a CSRF header must not have: CORS-safelisted ones a page on another origin may send without a
 * preflight (Fetch standard), and ones no page can set at all (every request would be refused).
 * @see https://fetch.spec.whatwg.org/#cors-safelisted-request-header
 * @see https://fetch.spec.whatwg.org/#forbidden-request-header
 */
const UNFIT_CSRF_HEADERS = new Set([
  'accept',
  'accept-language',
  'content-language',
  'content-type',
  'range',
  'cookie',
  'origin',
  'referer',
  'host',
]);

function checkCsrfHeaders(file: FileConfig, source: string, problems: string[]): void {
  const check = (path: string, name: string | undefined) => {
    if (name === undefined) return;
    const lower = name.toLowerCase();
    if (UNFIT_CSRF_HEADERS.has(lower) || lower.startsWith('sec-') || lower.startsWith('proxy-'))
      problems.push(
        `${source} ${path}/name: ${JSON.stringify(name)} cannot prove a same-origin call (a form sends it, or no page can); use a custom name such as X-CSRF`,
      );
  };
  check('/csrf/requireHeader', file.csrf?.requireHeader?.name);
  file.mappings.forEach((m, i) => {
    const own = m.csrf?.requireHeader;
    if (own) check(`/mappings/${i}/csrf/requireHeader`, own.name);
  });
}

/** `true` passes the schema's boolean type but means nothing: a limit is an object, and false switches one off. */
function checkRateLimits(file: FileConfig, source: string, problems: string[]): void {
  const refuse = (path: string) =>
    problems.push(`${source} ${path}: true is not a limit; write { requests: N, windowSeconds: S } or false for none`);
  for (const scope of ['auth', 'api'] as const) if ((file.rateLimits?.[scope] as unknown) === true) refuse(`/rateLimits/${scope}`);
  file.mappings.forEach((m, i) => {
    if ((m.rateLimit as unknown) === true) refuse(`/mappings/${i}/rateLimit`);
    const rules = (m as { rules?: ReadonlyArray<{ rateLimit?: unknown }> }).rules;
    rules?.forEach((r, j) => {
      if (r.rateLimit === true) refuse(`/mappings/${i}/rules/${j}/rateLimit`);
    });
  });
}

export function loadFileConfig(path: string, env: Env, readFile: (p: string) => string, problems: string[]): FileConfig {
  const source = `GATEHOUSE_CONFIG ${path}`;
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    problems.push(`${source}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return { allowedOrigins: [], mappings: [] };
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    // The yaml library's prettyErrors message ends with a code frame (the line and a caret): kept, indented.
    for (const e of doc.errors) {
      const [first, ...frame] = e.message.trimEnd().split('\n');
      const shownFrame = frame
        .filter((l) => l.trim() !== '')
        .map((l) => `\n      | ${l}`)
        .join('');
      problems.push(`${source}: YAML error at line ${e.linePos?.[0].line ?? '?'}: ${first ?? ''}${shownFrame}`);
    }
    return { allowedOrigins: [], mappings: [] };
  }
  const data = interpolate(doc.toJS() ?? {}, env, '', problems, source);
  const validate = (fileValidator ??= compileSchema<FileConfig>(FILE_SCHEMA));
  if (!validate(data)) {
    problems.push(...describeErrors(source, validate.errors, 'pointer'));
    return { allowedOrigins: [], mappings: [] };
  }
  checkMappings(data, source, problems);
  checkCsrfHeaders(data, source, problems);
  checkRateLimits(data, source, problems);
  resolveSchemaRefs(data, path, readFile, source, problems);
  return data;
}

const TRUST_PROXY_FORMS =
  'accepted: false (nobody), a hop count (1 = the direct peer), or comma-separated IPs/CIDRs (10.0.0.0/8, 192.168.1.10)';

function parseTrustProxy(value: string, problems: string[]): TrustProxy {
  if (value === 'false') return { kind: 'none' };
  if (value === 'true') {
    problems.push(`env TRUST_PROXY: "true" is not accepted: it would let any client forge its address and scheme; ${TRUST_PROXY_FORMS}`);
    return { kind: 'none' };
  }
  if (/^[0-9]+$/.test(value)) {
    if (Number(value) > 99) problems.push(`env TRUST_PROXY: ${value} hops is more than any real chain of proxies (at most 99)`);
    return { kind: 'hops', hops: Number(value) };
  }
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of list) {
    const [addr, bits] = entry.split('/');
    const family = isIP(addr ?? '');
    const max = family === 6 ? 128 : 32;
    if (!family || (bits !== undefined && !(/^[0-9]+$/.test(bits) && Number(bits) <= max))) {
      problems.push(`env TRUST_PROXY: "${entry}" is not an IP address or CIDR; ${TRUST_PROXY_FORMS}`);
    }
  }
  return { kind: 'addresses', list };
}

function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
}

/** The repository's demo page: what `npm start` serves, never a production deployment. */
const DEMO_DIR = fileURLToPath(new URL('../../public', import.meta.url));

/**
 * The SPA directory: PUBLIC_DIR when set (it must be a directory holding index.html), else the demo page
 * outside production. In production without PUBLIC_DIR nothing is served at /: the demo says "any username
 * and password work", which no production deployment should show.
 */
function spaDirectory(value: string | undefined, nodeEnv: string, problems: string[]): string | undefined {
  if (value === undefined) return nodeEnv === 'production' ? undefined : DEMO_DIR;
  const dir = resolve(value);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) problems.push(`env PUBLIC_DIR: ${dir} is not a directory`);
  else if (!existsSync(resolve(dir, 'index.html'))) problems.push(`env PUBLIC_DIR: ${dir} has no index.html (the page navigations get)`);
  return dir;
}

/**
 * Environment + config.yml → one validated, deep-frozen Config.
 * Throws ConfigError listing every problem, each naming the variable or the file and field.
 */
export function loadConfig(env: Env, options: LoadOptions = {}): Config {
  const problems: string[] = [];
  const e = parseEnv(env, problems);
  const devMode = options.devMode ?? false;
  const nodeEnv = e.NODE_ENV as 'development' | 'production' | 'test';
  const port = e.PORT as number;

  const issuer = e.OIDC_ISSUER as string | undefined;
  if (!issuer) {
    problems.push(
      nodeEnv === 'production'
        ? 'env OIDC_ISSUER: is required when NODE_ENV=production (the embedded dev IdP never runs in production)'
        : 'env OIDC_ISSUER: is required',
    );
  }
  if (issuer && !e.OIDC_CLIENT_ID) problems.push('env OIDC_CLIENT_ID: is required with OIDC_ISSUER');
  if (nodeEnv === 'production' && !e.REDIS_URL)
    problems.push(
      'env REDIS_URL: is required when NODE_ENV=production (the in-memory store loses sessions on restart and cannot be shared)',
    );
  const allowInsecureIssuer = e.OIDC_ALLOW_INSECURE_ISSUER as boolean;
  if (issuer && issuer.startsWith('http:') && !isLoopbackUrl(issuer) && !allowInsecureIssuer) {
    problems.push('env OIDC_ISSUER: must be https (set OIDC_ALLOW_INSECURE_ISSUER=true to accept the risk)');
  }

  let baseUrl = e.APP_BASE_URL as string | undefined;
  if (!baseUrl && devMode) baseUrl = `http://localhost:${port}`;
  if (!baseUrl) problems.push('env APP_BASE_URL: is required (the external URL, e.g. https://app.example.com)');
  baseUrl = (baseUrl ?? 'http://invalid').replace(/\/$/, '');
  const baseIsHttps = baseUrl.startsWith('https:');

  const secure = (e.SESSION_COOKIE_SECURE as boolean | undefined) ?? (devMode ? baseIsHttps : true);
  const sameSite = e.SESSION_COOKIE_SAMESITE as Config['session']['sameSite'];
  if (sameSite === 'None' && !secure) problems.push('env SESSION_COOKIE_SAMESITE: None requires SESSION_COOKIE_SECURE=true');
  const domain = e.SESSION_COOKIE_DOMAIN as string | undefined;
  const baseName = e.SESSION_COOKIE_NAME as string;
  const cookieName = secure && !domain ? `__Host-${baseName}` : baseName;
  const idle = e.SESSION_IDLE_TTL_SECONDS as number;
  const maxAge = e.SESSION_MAX_AGE_SECONDS as number;
  if (idle > maxAge) problems.push('env SESSION_IDLE_TTL_SECONDS: must not exceed SESSION_MAX_AGE_SECONDS');

  const configPath = e.GATEHOUSE_CONFIG as string;
  const file = loadFileConfig(configPath, env, options.readFile ?? ((p) => readFileSync(p, 'utf8')), problems);
  const extraOrigins = String(e.ALLOWED_ORIGINS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of extraOrigins) {
    let ok = false;
    try {
      ok = new URL(o).origin === o;
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`env ALLOWED_ORIGINS: "${o}" is not an origin (scheme://host[:port])`);
  }
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === port)
    problems.push(
      `env METRICS_PORT: ${port} is PORT too; give /metrics its own port, or unset METRICS_PORT to serve it on PORT behind ADMIN_TOKEN`,
    );
  const trustProxy = parseTrustProxy(e.TRUST_PROXY as string, problems);
  const publicDir = spaDirectory(e.PUBLIC_DIR as string | undefined, nodeEnv, problems);

  if (problems.length > 0) throw new ConfigError(problems);

  const redirectPath = e.OIDC_REDIRECT_PATH as string;
  const endpoints = {
    authorization_endpoint: e.OIDC_AUTHORIZATION_ENDPOINT as string | undefined,
    token_endpoint: e.OIDC_TOKEN_ENDPOINT as string | undefined,
    userinfo_endpoint: e.OIDC_USERINFO_ENDPOINT as string | undefined,
    jwks_uri: e.OIDC_JWKS_ENDPOINT as string | undefined,
    end_session_endpoint: e.OIDC_END_SESSION_ENDPOINT as string | undefined,
    revocation_endpoint: e.OIDC_REVOCATION_ENDPOINT as string | undefined,
  };
  const config: Config = {
    server: {
      port,
      host: e.HOST as string,
      baseUrl,
      origin: new URL(baseUrl).origin,
      trustProxy,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS as number,
      shutdownDelayMs: (e.SHUTDOWN_DELAY_SECONDS as number) * 1000,
      requestTimeoutMs: (e.REQUEST_TIMEOUT_SECONDS as number) * 1000,
      publicDir,
    },
    oidc: {
      issuer: issuer as string,
      clientId: e.OIDC_CLIENT_ID as string,
      ...(e.OIDC_CLIENT_SECRET ? { clientSecret: e.OIDC_CLIENT_SECRET as string } : {}),
      scopes: e.OIDC_SCOPES as string,
      ...(e.OIDC_PROMPT ? { prompt: e.OIDC_PROMPT as string } : {}),
      redirectPath,
      redirectUri: baseUrl + redirectPath,
      postLogoutRedirectUri: baseUrl + (e.OIDC_POST_LOGOUT_REDIRECT_PATH as string),
      endpoints: Object.fromEntries(Object.entries(endpoints).filter(([, v]) => v !== undefined)),
      idTokenSigningAlg: e.OIDC_ID_TOKEN_SIGNING_ALG as string,
      httpTimeoutSeconds: e.OIDC_HTTP_TIMEOUT_SECONDS as number,
      allowInsecureIssuer: allowInsecureIssuer || isLoopbackUrl(issuer as string),
      refreshSkewSeconds: e.TOKEN_REFRESH_SKEW_SECONDS as number,
      ...(e.ID_TOKEN_MAX_AGE_SECONDS !== undefined ? { idTokenMaxAgeSeconds: e.ID_TOKEN_MAX_AGE_SECONDS as number } : {}),
    },
    redis: {
      ...(e.REDIS_URL ? { url: e.REDIS_URL as string } : {}),
      keyPrefix: e.REDIS_KEY_PREFIX as string,
    },
    ...(e.API_AUDIENCE
      ? {
          bearer: {
            audience: e.API_AUDIENCE as string,
            algorithms: (e.API_TOKEN_ALGORITHMS as string).split(','),
            clockToleranceSeconds: e.TOKEN_CLOCK_TOLERANCE_SECONDS as number,
          },
        }
      : {}),
    session: {
      cookieName,
      secure,
      sameSite,
      ...(domain ? { domain } : {}),
      idleTtlSeconds: idle,
      maxAgeSeconds: maxAge,
    },
    ...(e.ADMIN_TOKEN ? { adminToken: e.ADMIN_TOKEN as string } : {}),
    metrics: {
      enabled: e.METRICS_PORT !== undefined || Boolean(e.ADMIN_TOKEN),
      ...(e.METRICS_PORT !== undefined ? { port: e.METRICS_PORT as number } : {}),
      host: (e.METRICS_HOST as string | undefined) ?? (e.HOST as string),
    },
    accessLog: e.ACCESS_LOG as Config['accessLog'],
    websocketMaxPerIdentity: e.WS_MAX_PER_IDENTITY as number,
    ...(e.NOTIFY_WEBHOOK_URL
      ? {
          notify: {
            url: e.NOTIFY_WEBHOOK_URL as string,
            ...(e.NOTIFY_WEBHOOK_SECRET ? { secret: e.NOTIFY_WEBHOOK_SECRET as string } : {}),
          },
        }
      : {}),
    routing: { ...file, allowedOrigins: [...new Set([...file.allowedOrigins, ...extraOrigins])] },
  };
  return deepFreeze(config);
}

/**
 * `text` validated as config.yml exactly as start-up validates the file at `path` (the same environment, the same
 * schema and checks; a schema `$ref` still resolves against that file's directory): what a PUT or a re-read
 * would make the file.
 */
export function loadConfigText(env: Env, text: string, path: string, options: LoadOptions = {}): Config {
  const readOther = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  return loadConfig({ ...env, GATEHOUSE_CONFIG: path }, { ...options, readFile: (p) => (p === path ? text : readOther(p)) });
}
