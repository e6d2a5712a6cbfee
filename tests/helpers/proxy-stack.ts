import { inject } from 'vitest';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { closedPortUrl, send, startBackend, type TestBackend } from './backends.ts';
import { expectErrorUnforwarded } from './expect-error.ts';
import { Browser } from './browser.ts';
import { startGatehouse, type TestGatehouse } from './gatehouse.ts';
import { closeOnError, startAll, useStarted, type Closable, type Server, type StartedAll, type Starters } from './hooks.ts';
import type { TestIdp } from './idp.ts';
import { retryOnPortRace, startStage } from './stage.ts';

/** Gatehouse with a real IdP and Redis, and one user logged in through the real login flow. */
export interface ProxyStack {
  readonly gh: TestGatehouse;
  readonly idp: TestIdp;
  readonly browser: Browser;
  /** `__Host-gh_session=<value>`, ready for a Cookie header. */
  readonly sessionCookie: string;
  readonly sessionValue: string;
  readonly url: string;
  /** Logs another user in and returns their Cookie pair. */
  loginAs(user: string): Promise<string>;
  /** The access token Gatehouse holds for a session (alice's unless another cookie value is given). */
  accessToken(sessionValue?: string): Promise<string>;
  close(): Promise<void>;
}

export const SESSION_COOKIE = '__Host-gh_session';

export async function startProxyStack(options: { yaml: string; env?: Record<string, string>; user?: string }): Promise<ProxyStack> {
  const { gh, idp, close } = await startStage({
    gatehouse: { redisUrl: inject('redisUrl'), yaml: options.yaml, ...(options.env ? { env: options.env } : {}) },
  });
  const url = gh.url;
  const loginAs = async (user: string) => {
    const browser = new Browser();
    const result = await browser.login(url, user);
    if (result.callbackStatus !== 302) throw new Error(`login as ${user} failed: ${result.callbackStatus}`);
    const value = browser.cookie(url, SESSION_COOKIE);
    if (!value) throw new Error('no session cookie after login');
    return `${SESSION_COOKIE}=${value}`;
  };
  const browser = new Browser();
  await browser.login(url, options.user ?? 'alice');
  const sessionValue = browser.cookie(url, SESSION_COOKIE);
  if (!sessionValue) throw new Error('no session cookie after login');
  return {
    gh,
    idp,
    browser,
    url,
    sessionValue,
    loginAs,
    sessionCookie: `${SESSION_COOKIE}=${sessionValue}`,
    async accessToken(value = sessionValue) {
      const token = (await gh.app.sessions.load(parseSessionSecret(value)))?.tokens.accessToken;
      if (token === undefined) throw new Error('no session (or no access token) behind that cookie value');
      return token;
    },
    close,
  };
}

/** What `useProxyStack` starts: a `ProxyStack` (alice logged in) with `backend`, and the other `backends`, behind it. */
export type ProxyStackWith<B, S extends Starters = NoBackends> = Omit<ProxyStack, 'close'> & {
  readonly backend: B;
  /** Every backend started, by name (`backend` too). */
  readonly backends: AllBackends<B, S>;
};

/** `backends` to start besides `backend`; their names must not be `backend`. */
export type NoBackends = Record<never, never>;

/** Every backend started, by name: `backend` (the main one) and the others. */
type AllBackends<B, S extends Starters> = StartedAll<S & { backend: () => Promise<B> }>;

/** Mappings built from the main backend's URL and every backend started. */
type Routes<B, S extends Starters> = (backendUrl: string, backends: AllBackends<B, S>) => ReadonlyArray<Record<string, unknown>>;

interface BackendOptions<B, S extends Starters> {
  /** The main backend; a recording `startBackend()` unless given. */
  backend?: () => Promise<B>;
  /** More backends, started after `backend`, in order, and closed with it. */
  backends?: S;
  routes?: Routes<B, S>;
  /** config.yml lines before `mappings:`, e.g. `allowedOrigins: [...]`. */
  config?: string;
  env?: Record<string, string>;
}

/** Starts the backends, then `front` with them; closes the backends when `front` fails, and both in close(). */
async function startBehind<B extends Server, S extends Starters, F extends Closable>(
  options: BackendOptions<B, S>,
  front: (routes: Routes<B, S> | undefined, backends: AllBackends<B, S>) => Promise<F>,
) {
  const main = options.backend ?? (startBackend as unknown as () => Promise<B>);
  const servers = await startAll({ backend: main, ...options.backends } as S & { backend: () => Promise<B> });
  return closeOnError(servers, async () => {
    const started = await front(options.routes, servers);
    return {
      front: started,
      servers,
      async close() {
        await started.close();
        await servers.close();
      },
    };
  });
}

/**
 * Registers beforeAll/afterAll for a file's describe block: starts `backend` (a recording `startBackend()`
 * unless given) and the other `backends`, then a `ProxyStack` whose mappings `routes` builds from them (a
 * catch-all to `backend` with the default `auth: required` unless given), and closes them all afterwards.
 * The fields can be read from beforeAll on.
 */
export function useProxyStack<B extends Server = TestBackend, S extends Starters = NoBackends>(
  options: BackendOptions<B, S> = {},
): ProxyStackWith<B, S> {
  const get = useStarted('useProxyStack', () =>
    startBehind(options, (routes, backends) => {
      const list = routes?.(backends.backend.url, backends) ?? [{ frontendHost: '*', backend: backends.backend.url }];
      return startProxyStack({ yaml: mappingsYaml(list, options.config), ...(options.env ? { env: options.env } : {}) });
    }),
  );
  return {
    get backend() {
      return get().servers.backend;
    },
    get backends() {
      return get().servers;
    },
    get gh() {
      return get().front.gh;
    },
    get idp() {
      return get().front.idp;
    },
    get browser() {
      return get().front.browser;
    },
    get sessionCookie() {
      return get().front.sessionCookie;
    },
    get sessionValue() {
      return get().front.sessionValue;
    },
    get url() {
      return get().front.url;
    },
    loginAs: (user) => get().front.loginAs(user),
    accessToken: (sessionValue) => get().front.accessToken(sessionValue),
  };
}

/** Backend JSON from the echo handler. */
export interface Echoed {
  method: string;
  url: string;
  rawHeaders: string[];
  bodySize: number;
}

/** YAML for one mapping; values are emitted as JSON, which YAML reads as they are. */
export function mapping(m: Record<string, unknown>): string {
  return `  - ${Object.entries(m)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join('\n    ')}\n`;
}

export function mappingsYaml(list: ReadonlyArray<Record<string, unknown>>, extra = ''): string {
  return `${extra}mappings:\n${list.map(mapping).join('')}`;
}

/** Gatehouse without an IdP, for mappings with `auth: none` (the OIDC issuer is never reached). */
export function startBareGatehouse(yaml: string, env: Record<string, string> = {}): Promise<TestGatehouse> {
  return retryOnPortRace(() =>
    startGatehouse({
      redisUrl: inject('redisUrl'),
      yaml,
      env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused', ...env },
    }),
  );
}

/** What `useBareProxy` starts: backends behind a Gatehouse without an IdP. */
export interface BareProxy<B, S extends Starters = NoBackends> {
  readonly gh: TestGatehouse;
  readonly backend: B;
  /** Every backend started, by name (`backend` too). */
  readonly backends: AllBackends<B, S>;
  /** Gatehouse's base URL. */
  readonly url: string;
  /** `127.0.0.1:<port>`, for a Host header written by hand. */
  readonly host: string;
}

/**
 * Registers beforeAll/afterAll for a file's describe block: starts `backend` (a recording `startBackend()`
 * unless given) and the other `backends`, then a bare Gatehouse whose mappings `routes` builds from them
 * (unless given: one `frontendHost: '*'`, `auth: none` mapping to `backend`, plus `mapping`'s fields), and
 * closes them all afterwards. The fields can be read from beforeAll on.
 */
export function useBareProxy<B extends Server = TestBackend, S extends Starters = NoBackends>(
  options: BackendOptions<B, S> & { mapping?: Record<string, unknown> } = {},
): BareProxy<B, S> {
  const get = useStarted('useBareProxy', () =>
    startBehind(options, (routes, backends) => {
      const catchAll = { frontendHost: '*', backend: backends.backend.url, auth: 'none', ...options.mapping };
      const list = routes?.(backends.backend.url, backends) ?? [catchAll];
      return startBareGatehouse(mappingsYaml(list, options.config), options.env);
    }),
  );
  return {
    get gh() {
      return get().front;
    },
    get backend() {
      return get().servers.backend;
    },
    get backends() {
      return get().servers;
    },
    get url() {
      return get().front.url;
    },
    get host() {
      return new URL(get().front.url).host;
    },
  };
}

/**
 * The layout the path and routing attacks aim at: a public API (`/public`, and a host-only catch-all,
 * both `auth: none`) beside protected ones (`/admin`, `/private`, auth required), each on its own backend,
 * so a test can tell which policy a request got and whether any backend saw it.
 */
export interface PolicyLayout {
  readonly gh: TestGatehouse;
  readonly publicBackend: TestBackend;
  readonly adminBackend: TestBackend;
  readonly catchAll: TestBackend;
  /** Requests all three backends received so far. */
  received(): number;
  /** GET `path` is answered `status` with the stable `code`, and no backend saw anything of it. */
  refuses(path: string, status: number, code: string): Promise<void>;
  close(): Promise<void>;
}

export async function startPolicyLayout(env: Record<string, string> = {}): Promise<PolicyLayout> {
  const publicBackend = await startBackend();
  const adminBackend = await startBackend();
  const catchAll = await startBackend();
  const gh = await startBareGatehouse(
    mappingsYaml([
      { frontendHost: '*', backend: catchAll.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/public', backend: publicBackend.url, auth: 'none' },
      { frontendHost: '*', pathPrefix: '/admin', backend: adminBackend.url },
      { frontendHost: '*', pathPrefix: '/private', backend: adminBackend.url },
    ]),
    env,
  );
  const received = () => publicBackend.requests.length + adminBackend.requests.length + catchAll.requests.length;
  return {
    gh,
    publicBackend,
    adminBackend,
    catchAll,
    received,
    refuses: (path, status, code) => expectErrorUnforwarded(received, () => send(gh.url, { path }), status, code, path),
    async close() {
      await gh.close();
      await Promise.all([publicBackend.close(), adminBackend.close(), catchAll.close()]);
    },
  };
}

/** Registers beforeAll/afterAll that start a `PolicyLayout` and close it; its fields can be read from beforeAll on. */
export function usePolicyLayout(env: Record<string, string> = {}): Omit<PolicyLayout, 'close'> {
  const get = useStarted('usePolicyLayout', () => startPolicyLayout(env));
  return {
    get gh() {
      return get().gh;
    },
    get publicBackend() {
      return get().publicBackend;
    },
    get adminBackend() {
      return get().adminBackend;
    },
    get catchAll() {
      return get().catchAll;
    },
    received: () => get().received(),
    refuses: (path, status, code) => get().refuses(path, status, code),
  };
}

/** A backend URL nothing listens on (connections are refused), as a `Server` for `backends`. */
export async function closedPort(): Promise<Server> {
  return { url: await closedPortUrl(), close: async () => {} };
}
