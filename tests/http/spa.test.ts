import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, writeConfigFile, type TestGatehouse } from '../helpers/gatehouse.ts';

const UNUSED_IDP = { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused' };
const HTML = { accept: 'text/html,application/xhtml+xml' };

/** An operator's SPA build: index.html, a hashed bundle, an unhashed file, and a name that only looks hashed. */
function spaBuild(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-spa-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>operator spa</title>');
  writeFileSync(join(dir, 'assets', 'index-D8xF2k1Q.js'), 'console.log(1)');
  writeFileSync(join(dir, 'assets', 'main.3f9a1c2b.css'), 'body{}');
  writeFileSync(join(dir, 'assets', 'app-settings.js'), 'x');
  writeFileSync(join(dir, 'robots.txt'), 'User-agent: *');
  return dir;
}

describe('PUBLIC_DIR: the operator’s SPA at /', () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    gh = await startGatehouse({ redisUrl: inject('redisUrl'), env: { ...UNUSED_IDP, NODE_ENV: 'production', PUBLIC_DIR: spaBuild() } });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it('serves index.html at / and for navigations, revalidated on every use', async () => {
    for (const path of ['/', '/orders/42']) {
      const res = await fetch(`${gh.url}${path}`, { headers: HTML });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('operator spa');
      expect(res.headers.get('cache-control')).toBe('no-cache');
    }
  });

  it.each(['/assets/index-D8xF2k1Q.js', '/assets/main.3f9a1c2b.css'])('caches the hashed asset %s as immutable', async (path) => {
    const res = await fetch(`${gh.url}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it.each(['/robots.txt', '/assets/app-settings.js'])('revalidates %s, whose name carries no hash', async (path) => {
    const res = await fetch(`${gh.url}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-cache');
  });

  it('answers a missing asset 404 not_found, not the SPA shell', async () => {
    await expectError(await fetch(`${gh.url}/assets/missing-1a2b3c4d.js`), 404, 'not_found');
  });
});

describe('production without PUBLIC_DIR', () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    gh = await startGatehouse({ redisUrl: inject('redisUrl'), env: { ...UNUSED_IDP, NODE_ENV: 'production' } });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it.each(['/', '/index.html', '/orders/42'])('serves no demo page at %s (404 not_found)', async (path) => {
    await expectError(await fetch(`${gh.url}${path}`, { headers: HTML }), 404, 'not_found');
  });
});

describe('PUBLIC_DIR problems stop start-up, naming the variable', () => {
  const base = { ...UNUSED_IDP, APP_BASE_URL: 'http://127.0.0.1:1', GATEHOUSE_CONFIG: writeConfigFile('mappings: []\n') };
  const problemsOf = (env: Record<string, string>): readonly string[] => {
    try {
      loadConfig(env);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    throw new Error('the configuration was accepted');
  };

  it('a directory that does not exist', () => {
    expect(problemsOf({ ...base, PUBLIC_DIR: '/nonexistent/spa' })).toEqual(['env PUBLIC_DIR: /nonexistent/spa is not a directory']);
  });

  it('a directory without index.html', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-spa-empty-'));
    expect(problemsOf({ ...base, PUBLIC_DIR: dir })).toEqual([`env PUBLIC_DIR: ${dir} has no index.html (the page navigations get)`]);
  });
});
