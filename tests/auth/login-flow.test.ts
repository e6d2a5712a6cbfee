import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Browser } from '../helpers/browser.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import type { TestIdp } from '../helpers/idp.ts';
import { startStage } from '../helpers/stage.ts';

describe('login flow against a real oidc-provider and Redis', () => {
  let idp: TestIdp;
  let gh: TestGatehouse;

  beforeAll(async () => {
    ({ idp, gh } = await startStage({ gatehouse: { redisUrl: inject('redisUrl') } }));
  });
  afterAll(async () => {
    await gh?.close();
    await idp?.close();
  });

  it('logs in through the IdP forms and lands on next with a session', async () => {
    const browser = new Browser();
    const result = await browser.login(gh.url, 'alice', '/dashboard?tab=1');
    expect(result.callbackStatus).toBe(302);
    expect(result.location).toBe('/dashboard?tab=1');
    const me = await browser.fetch(`${gh.url}/auth/me`);
    expect(me.status).toBe(200);
    const body = (await me.json()) as { user: { sub: string; email: string; name: string } };
    expect(body.user).toEqual({ sub: 'alice', email: 'alice@example.test', name: 'Alice' });
    expect(JSON.stringify(body)).not.toMatch(/eyJ/);
  });
});
