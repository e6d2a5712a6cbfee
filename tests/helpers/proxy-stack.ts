import { afterAll, beforeAll, inject } from 'vitest';
import { startBackend, type TestBackend } from './backends.ts';
import { Browser } from './browser.ts';
import { startGatehouse, type TestGatehouse } from './gatehouse.ts';
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
  close(): Promise<void>;
}

export const SESSION_COOKIE = '__Host-gh_session';

export async function startProxyStack(options: { yaml: string; env?: Record<string, string>; user?: string }): Promise<ProxyStack> {
  const { gh, idp, close } = await startStage({ gatehouse: { redisUrl: inject('redisUrl'), yaml: options.yaml, ...(options.env ? { env: options.env } : {}) } });
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
    gh, idp, browser, url, sessionValue, loginAs,
    sessionCookie: `${SESSION_COOKIE}=${sessionValue}`,
    close,
  };
}

/** What `useProxyStack` starts: a `ProxyStack` (alice logged in) with `backend` behind its mappings. */
export type ProxyStackWith<B> = Omit<ProxyStack, 'close'> & { readonly backend: B };

/**
 * Registers beforeAll/afterAll for a file's describe block: starts `backend` (a recording `startBackend()`
 * unless given), then a `ProxyStack` whose mappings `routes` builds from the backend's URL (a catch-all
 * with the default `auth: required` unless given), and closes both afterwards. The fields can be read from
 * beforeAll on.
 */
export function useProxyStack<B extends { readonly url: string; close(): Promise<void> } = TestBackend>(options: {
  backend?: () => Promise<B>;
  routes?: (backendUrl: string) => ReadonlyArray<Record<string, unknown>>;
  env?: Record<string, string>;
} = {}): ProxyStackWith<B> {
  let stack: ProxyStack | undefined;
  let backend: B | undefined;
  beforeAll(async () => {
    backend = await (options.backend ?? (startBackend as unknown as () => Promise<B>))();
    const routes = options.routes?.(backend.url) ?? [{ frontendHost: '*', backend: backend.url }];
    stack = await startProxyStack({ yaml: mappingsYaml(routes), ...(options.env ? { env: options.env } : {}) });
  });
  afterAll(async () => {
    await stack?.close();
    await backend?.close();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useProxyStack: read its fields in a test or hook, after its beforeAll');
    return value;
  };
  return {
    get backend() { return started(backend); },
    get gh() { return started(stack).gh; },
    get idp() { return started(stack).idp; },
    get browser() { return started(stack).browser; },
    get sessionCookie() { return started(stack).sessionCookie; },
    get sessionValue() { return started(stack).sessionValue; },
    get url() { return started(stack).url; },
    loginAs: (user) => started(stack).loginAs(user),
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
  return `  - ${Object.entries(m).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n    ')}\n`;
}

export function mappingsYaml(list: ReadonlyArray<Record<string, unknown>>, extra = ''): string {
  return `${extra}mappings:\n${list.map(mapping).join('')}`;
}

/** Gatehouse without an IdP, for mappings with `auth: none` (the OIDC issuer is never reached). */
export function startBareGatehouse(yaml: string, env: Record<string, string> = {}): Promise<TestGatehouse> {
  return retryOnPortRace(() => startGatehouse({
    redisUrl: inject('redisUrl'),
    yaml,
    env: { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused', ...env },
  }));
}

/** What `useBareProxy` starts: a backend behind one catch-all mapping, on a Gatehouse without an IdP. */
export interface BareProxy<B> {
  readonly gh: TestGatehouse;
  readonly backend: B;
  /** Gatehouse's base URL. */
  readonly url: string;
  /** `127.0.0.1:<port>`, for a Host header written by hand. */
  readonly host: string;
}

/**
 * Registers beforeAll/afterAll for a file's describe block: starts `backend` (a recording `startBackend()`
 * unless given) behind a `frontendHost: '*'`, `auth: none` mapping (plus `mapping`'s fields) on a bare
 * Gatehouse, and closes both afterwards. The fields can be read from beforeAll on.
 */
export function useBareProxy<B extends { readonly url: string; close(): Promise<void> } = TestBackend>(options: {
  backend?: () => Promise<B>;
  mapping?: Record<string, unknown>;
  env?: Record<string, string>;
} = {}): BareProxy<B> {
  let gh: TestGatehouse | undefined;
  let backend: B | undefined;
  beforeAll(async () => {
    backend = await (options.backend ?? (startBackend as unknown as () => Promise<B>))();
    gh = await startBareGatehouse(mappingsYaml([{ frontendHost: '*', backend: backend.url, auth: 'none', ...options.mapping }]), options.env);
  });
  afterAll(async () => {
    await gh?.close();
    await backend?.close();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useBareProxy: read its fields in a test or hook, after its beforeAll');
    return value;
  };
  return {
    get gh() { return started(gh); },
    get backend() { return started(backend); },
    get url() { return started(gh).url; },
    get host() { return new URL(started(gh).url).host; },
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
  close(): Promise<void>;
}

export async function startPolicyLayout(env: Record<string, string> = {}): Promise<PolicyLayout> {
  const publicBackend = await startBackend();
  const adminBackend = await startBackend();
  const catchAll = await startBackend();
  const gh = await startBareGatehouse(mappingsYaml([
    { frontendHost: '*', backend: catchAll.url, auth: 'none' },
    { frontendHost: '*', pathPrefix: '/public', backend: publicBackend.url, auth: 'none' },
    { frontendHost: '*', pathPrefix: '/admin', backend: adminBackend.url },
    { frontendHost: '*', pathPrefix: '/private', backend: adminBackend.url },
  ]), env);
  return {
    gh, publicBackend, adminBackend, catchAll,
    received: () => publicBackend.requests.length + adminBackend.requests.length + catchAll.requests.length,
    async close() {
      await gh.close();
      await Promise.all([publicBackend.close(), adminBackend.close(), catchAll.close()]);
    },
  };
}
