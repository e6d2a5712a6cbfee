import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';

const FILE = '/etc/gatehouse/config.yml';
const SOURCE = `GATEHOUSE_CONFIG ${FILE}`;

const BASE_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  APP_BASE_URL: 'https://app.example.com',
  OIDC_ISSUER: 'https://idp.example.com',
  OIDC_CLIENT_ID: 'gatehouse',
  REDIS_URL: 'redis://127.0.0.1:6379',
  GATEHOUSE_CONFIG: FILE,
};

const VALID_YAML = `
allowedOrigins: ["https://admin.example.com"]
mappings:
  - frontendHost: app.example.com
    pathPrefix: /orders
    backend: http://orders.internal:8080/v1
`;

function load(env: Record<string, string | undefined>, yaml = VALID_YAML) {
  return loadConfig(
    { ...BASE_ENV, ...env },
    {
      readFile: (path) => {
        if (path !== FILE) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
        return yaml;
      },
    },
  );
}

/** The problem lines of the ConfigError that loading throws (fails the test when nothing is thrown). */
function problems(env: Record<string, string | undefined>, yaml = VALID_YAML): readonly string[] {
  try {
    load(env, yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    for (const p of e.problems) expect(e.message).toContain(p);
    return e.problems;
  }
  throw new Error('the configuration was accepted');
}

function lineFor(list: readonly string[], start: string): string {
  const line = list.find((p) => p.startsWith(start));
  expect(line, `no problem starting with ${JSON.stringify(start)} in ${JSON.stringify(list)}`).toBeDefined();
  return line ?? '';
}

describe('loadConfig: defaults and immutability', () => {
  it('applies the documented defaults', () => {
    const config = load({});
    expect(config.server).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      baseUrl: 'https://app.example.com',
      origin: 'https://app.example.com',
      trustProxy: { kind: 'none' },
      shutdownTimeoutMs: 10000,
      shutdownDelayMs: 5000,
    });
    expect(config.session).toEqual({
      cookieName: '__Host-gh_session',
      secure: true,
      sameSite: 'Lax',
      idleTtlSeconds: 28800,
      maxAgeSeconds: 604800,
    });
    expect(config.oidc).toMatchObject({
      redirectUri: 'https://app.example.com/auth/callback',
      postLogoutRedirectUri: 'https://app.example.com/',
      scopes: 'openid profile email offline_access',
      idTokenSigningAlg: 'RS256',
      allowInsecureIssuer: false,
      httpTimeoutSeconds: 10,
    });
    expect(config.redis).toEqual({ url: 'redis://127.0.0.1:6379', keyPrefix: 'gh:' });
    expect(config.routing.mappings[0]).toMatchObject({ auth: 'required', timeoutMs: 30000, websocket: true, forwardAccessToken: true });
    expect(config.routing.allowedOrigins).toEqual(['https://admin.example.com']);
  });

  it('is deep-frozen: no part of it can be changed at run time', () => {
    const config = load({});
    for (const part of [
      config,
      config.server,
      config.session,
      config.oidc,
      config.oidc.endpoints,
      config.redis,
      config.routing,
      config.routing.mappings,
      config.routing.mappings[0],
      config.routing.allowedOrigins,
    ]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (config.session as unknown as Record<string, unknown>)['secure'] = false;
    }).toThrow(TypeError);
    expect(() => {
      (config.routing.mappings as unknown as unknown[]).push({});
    }).toThrow(TypeError);
  });

  it('takes ${VAR} and ${VAR:-default} from the environment, and never expands a value a second time', () => {
    const yaml = `
defaultBackend: "\${FALLBACK_URL:-http://fallback.internal}"
mappings:
  - frontendHost: app.example.com
    backend: "\${ORDERS_URL}"
    identityHeaders:
      x-user-tenant: "\${TENANT_CLAIM}"
`;
    const config = load({ ORDERS_URL: 'http://orders.internal:9000', TENANT_CLAIM: 'tenant' }, yaml);
    expect(config.routing.defaultBackend).toBe('http://fallback.internal');
    expect(config.routing.mappings[0]?.backend).toBe('http://orders.internal:9000');
    expect(config.routing.mappings[0]?.identityHeaders).toEqual({ 'x-user-tenant': 'tenant' });
    // A value that itself looks like a reference stays literal (and is then not a URL).
    const list = problems({ ORDERS_URL: 'http://orders.internal:9000', TENANT_CLAIM: 'tenant', FALLBACK_URL: '${ORDERS_URL}' }, yaml);
    lineFor(list, `${SOURCE} /defaultBackend: `);
  });
});

describe('loadConfig: every problem names its source and field', () => {
  it.each(['abc', '70000', '-1', '80.5', '8080abc'])('PORT=%s', (value) => {
    expect(lineFor(problems({ PORT: value }), 'env PORT: ')).toMatch(/^env PORT: /);
  });

  it('SESSION_COOKIE_SAMESITE=Sideways lists the allowed values', () => {
    expect(lineFor(problems({ SESSION_COOKIE_SAMESITE: 'Sideways' }), 'env SESSION_COOKIE_SAMESITE: ')).toMatch(/Strict, Lax, None/);
  });

  it.each(['ture', 'yes', '1', 'TRUE'])('SESSION_COOKIE_SECURE=%s is refused, never read as false', (value) => {
    expect(lineFor(problems({ SESSION_COOKIE_SECURE: value }), 'env SESSION_COOKIE_SECURE: ')).toMatch(/true or false/);
  });

  it('NODE_ENV=production without OIDC_ISSUER says the dev IdP never runs in production', () => {
    const line = lineFor(problems({ NODE_ENV: 'production', OIDC_ISSUER: undefined, OIDC_CLIENT_ID: undefined }), 'env OIDC_ISSUER: ');
    expect(line).toMatch(/production/);
    expect(line).toMatch(/dev IdP never runs in production/);
  });

  it('NODE_ENV=production without REDIS_URL is refused (in-memory sessions)', () => {
    expect(lineFor(problems({ NODE_ENV: 'production', REDIS_URL: undefined }), 'env REDIS_URL: ')).toMatch(/production/);
  });

  it('an unknown field in config.yml, at the root or in a mapping', () => {
    const list = problems(
      {},
      `
colour: blue
mappings:
  - frontendHost: app.example.com
    backend: http://orders.internal
    bakend: http://typo.internal
`,
    );
    expect(lineFor(list, `${SOURCE} /colour: `)).toMatch(/not a known field/);
    expect(lineFor(list, `${SOURCE} /mappings/0/bakend: `)).toMatch(/not a known field/);
  });

  it('a mapping without backend', () => {
    expect(lineFor(problems({}, 'mappings:\n  - frontendHost: app.example.com\n'), `${SOURCE} /mappings/0/backend: `)).toMatch(/required/);
  });

  it.each([
    'file:///etc/passwd',
    'gopher://orders.internal',
    'http://user:pass@orders.internal',
    'orders.internal:8080',
    'http://orders.internal/?q=1',
  ])('backend %s', (backend) => {
    expect(
      lineFor(problems({}, `mappings:\n  - frontendHost: app.example.com\n    backend: "${backend}"\n`), `${SOURCE} /mappings/0/backend: `),
    ).not.toBe('');
  });

  it('two mappings for the same host, port and prefix', () => {
    const yaml = `
mappings:
  - frontendHost: app.example.com
    pathPrefix: /orders
    backend: http://a.internal
  - frontendHost: APP.example.com
    pathPrefix: /Orders
    backend: http://b.internal
`;
    expect(lineFor(problems({}, yaml), `${SOURCE} /mappings/1: `)).toMatch(/\/mappings\/0/);
  });

  it('a YAML syntax error names the file and the line', () => {
    const line = lineFor(problems({}, 'mappings:\n  - frontendHost: app.example.com\n    backend: [unclosed\n'), `${SOURCE}: `);
    expect(line).toMatch(/YAML error at line \d+/);
  });

  it('a key given twice in YAML is an error, not last-one-wins', () => {
    const yaml = 'mappings:\n  - frontendHost: app.example.com\n    backend: http://a.internal\n    backend: http://b.internal\n';
    expect(lineFor(problems({}, yaml), `${SOURCE}: `)).toMatch(/YAML error/);
  });

  it('an unset ${VAR} names the variable and the field that uses it', () => {
    const yaml = 'mappings:\n  - frontendHost: app.example.com\n    backend: "${ORDERS_URL}"\n';
    expect(lineFor(problems({ ORDERS_URL: undefined }, yaml), `${SOURCE} /mappings/0/backend: `)).toMatch(/\$\{ORDERS_URL\}.*not set/);
  });

  it('a config file that cannot be read', () => {
    const list = problems({ GATEHOUSE_CONFIG: '/nonexistent/config.yml' });
    expect(list.some((p) => p.startsWith('GATEHOUSE_CONFIG /nonexistent/config.yml: ') && p.includes('ENOENT'))).toBe(true);
  });

  it('lists every problem at once, from the environment and the file together', () => {
    const list = problems(
      { PORT: 'abc', SESSION_COOKIE_SAMESITE: 'lax-ish', SESSION_COOKIE_SECURE: 'ture', APP_BASE_URL: undefined },
      'mappings:\n  - frontendHost: app.example.com\n    backend: "file:///etc/passwd"\n    colour: blue\n  - frontendHost: "bad host!"\n',
    );
    lineFor(list, 'env PORT: ');
    lineFor(list, 'env SESSION_COOKIE_SAMESITE: ');
    lineFor(list, 'env SESSION_COOKIE_SECURE: ');
    lineFor(list, 'env APP_BASE_URL: ');
    lineFor(list, `${SOURCE} /mappings/0/backend: `);
    lineFor(list, `${SOURCE} /mappings/0/colour: `);
    lineFor(list, `${SOURCE} /mappings/1/frontendHost: `);
    lineFor(list, `${SOURCE} /mappings/1/backend: `);
    expect(list.length).toBeGreaterThanOrEqual(8);
    for (const line of list) expect(line).toMatch(/^(env [A-Z_]+|GATEHOUSE_CONFIG \/\S+)[ :]/);
  });
});
