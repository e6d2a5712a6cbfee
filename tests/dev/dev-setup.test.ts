import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import { ROOT, startMain, type MainProcess } from '../helpers/main-process.ts';
import { freePort } from '../helpers/ports.ts';
import { expectError } from '../helpers/expect-error.ts';

async function waitReady(url: string, started: MainProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) throw new Error(`gatehouse exited early (${started.child.exitCode}):\n${started.output()}`);
    const status = await fetch(`${url}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`/readyz never answered 200:\n${started.output()}`);
}

describe('npm start with no configuration: embedded dev IdP, demo backend, in-memory sessions', () => {
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
  });

  it('starts, logs alice in through the dev IdP, proxies /api to the demo backend with her identity, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const url = `http://localhost:${port}`;
    const started = startMain({
      PORT: String(port),
      HOST: '127.0.0.1',
      DEV_BACKEND_PORT: '0',
      GATEHOUSE_CONFIG: `${ROOT}config.yml`,
      SHUTDOWN_DELAY_SECONDS: '0',
    });
    children.push(started.child);
    await waitReady(url, started, 20_000);
    expect(started.output()).toMatch(/DEVELOPMENT MODE/);

    const browser = new Browser();
    const login = await browser.login(url, 'alice');
    expect(login.callbackStatus).toBe(302);
    const me = await browser.fetch(`${url}/auth/me`);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { sub: string } }).user.sub).toBe('alice');

    const api = await browser.fetch(`${url}/api/anything?x=1`);
    expect(api.status).toBe(200);
    const echoed = (await api.json()) as { backend: string; path: string; headers: Record<string, string> };
    expect(echoed.backend).toBe('gatehouse-demo');
    expect(echoed.path).toBe('/anything');
    expect(echoed.headers['x-user-sub']).toBe('alice');
    expect(echoed.headers['cookie'] ?? '').not.toMatch(/gh_session|gh_login/);

    const anonymous = await fetch(`${url}/api/anything`);
    await expectError(anonymous, 401, 'unauthorized');

    const t0 = Date.now();
    started.child.kill('SIGTERM');
    const code = await Promise.race([started.exited, sleep(8000).then(() => 'timeout' as const)]);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(
      await fetch(`${url}/healthz`).then(
        () => 'up',
        () => 'down',
      ),
    ).toBe('down');
  });

  it('refuses NODE_ENV=production without OIDC_ISSUER: exits non-zero naming OIDC_ISSUER and production', async () => {
    const port = await freePort();
    const started = startMain({ NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1', GATEHOUSE_CONFIG: `${ROOT}config.yml` });
    children.push(started.child);
    const code = await Promise.race([started.exited, sleep(10_000).then(() => 'timeout' as const)]);
    expect(code).not.toBe(0);
    expect(code).not.toBe('timeout');
    const output = started.output();
    expect(output).toMatch(/OIDC_ISSUER[^\n]*production/);
    expect(output).not.toMatch(/DEVELOPMENT MODE/);
    expect(
      await fetch(`http://127.0.0.1:${port}/healthz`).then(
        () => 'up',
        () => 'down',
      ),
    ).toBe('down');
  });
});
