import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';

const UNUSED_IDP = { OIDC_ISSUER: 'http://127.0.0.1:9/unused', OIDC_CLIENT_ID: 'unused', OIDC_CLIENT_SECRET: 'unused' };

/** helmet's headers, as every non-/api answer must carry them (no inline script: the SPA loads its own files). */
function expectHardened(headers: Headers, label: string): void {
  const csp = headers.get('content-security-policy') ?? '';
  expect(csp, label).toContain("default-src 'self'");
  expect(csp, label).toContain("script-src 'self'");
  const scriptSrc = csp.split(';').find((d) => d.trim().startsWith('script-src')) ?? '';
  expect(scriptSrc, label).not.toContain('unsafe-inline');
  expect(csp, label).toContain("frame-ancestors 'self'");
  expect(headers.get('x-content-type-options'), label).toBe('nosniff');
  expect(headers.get('x-frame-options'), label).toBe('SAMEORIGIN');
  expect(headers.get('referrer-policy'), label).toBe('no-referrer');
  expect(headers.get('cross-origin-opener-policy'), label).toBe('same-origin');
  expect(headers.get('x-powered-by'), label).toBeNull();
}

describe('security headers on every non-/api answer', () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    const spa = mkdtempSync(join(tmpdir(), 'gatehouse-spa-'));
    writeFileSync(join(spa, 'index.html'), '<!doctype html><title>spa</title><script src="/app.js"></script>');
    writeFileSync(join(spa, 'app.js'), 'console.log(1)');
    gh = await startGatehouse({ redisUrl: inject('redisUrl'), env: { ...UNUSED_IDP, PUBLIC_DIR: spa } });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it.each([
    ['/healthz', 200],
    ['/readyz', 503],
    ['/', 200],
    ['/orders/42', 200],
    ['/app.js', 200],
  ])('%s (%i)', async (path, status) => {
    const res = await fetch(`${gh.url}${path}`, { headers: { accept: 'text/html' } });
    await res.body?.cancel();
    expect(res.status).toBe(status);
    expectHardened(res.headers, path);
  });

  it('GET /auth/me without a session: 401 unauthorized, hardened', async () => {
    const res = await fetch(`${gh.url}/auth/me`);
    expectHardened(res.headers, '/auth/me');
    await expectError(res, 401, 'unauthorized');
  });

  it('a 404 and a 405 from Gatehouse itself, hardened', async () => {
    const missing = await fetch(`${gh.url}/missing.js`);
    expectHardened(missing.headers, '404');
    await expectError(missing, 404, 'not_found');
    const logout = await fetch(`${gh.url}/auth/logout`);
    expectHardened(logout.headers, '405');
    await expectError(logout, 405, 'method_not_allowed');
  });

  it('a 414 for a 10 KB URL outside /api, hardened', async () => {
    const res = await fetch(`${gh.url}/${'a'.repeat(10_000)}`);
    expectHardened(res.headers, '414');
    await expectError(res, 414, 'uri_too_long');
  });

  it('/api answers never say X-Powered-By either', async () => {
    const res = await send(gh.url, { path: '/api/nothing' });
    expectError(res, 404, 'not_found');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});

describe('the demo SPA under that policy', () => {
  let gh: TestGatehouse;
  beforeAll(async () => {
    gh = await startGatehouse({ redisUrl: inject('redisUrl'), env: UNUSED_IDP });
  });
  afterAll(async () => {
    await gh?.close();
  });

  it('is served hardened, and loads only scripts and styles from its own origin (nothing inline the CSP would block)', async () => {
    const res = await fetch(`${gh.url}/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expectHardened(res.headers, 'demo /');
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="\/[^/]/);
      expect(body?.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b|\sstyle="|\son[a-z]+="/i);
  });
});
