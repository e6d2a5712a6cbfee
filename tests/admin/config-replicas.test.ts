import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backends.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml } from '../helpers/proxy-stack.ts';
import { retryOnPortRace, useStage } from '../helpers/stage.ts';
import { waitUntil } from '../helpers/token-kit.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const PREFIX = `cfgrp${randomBytes(3).toString('hex')}:`;
const named = (name: string): Promise<TestBackend> =>
  startBackend((_req, res) => {
    res.end(name);
    return true;
  });
const routingTo = (backend: string, marker = '') => `${marker}${mappingsYaml([{ frontendHost: '*', backend, auth: 'none' }])}`;

/**
 * config.yml across replicas sharing Redis: a change on one reaches the others within 2 s through the store and the
 * Bus, an instance started later comes up with the cluster's version rather than its own stale file, and two
 * changes racing from the same version cannot both win.
 */
describe('configuration across replicas', () => {
  const env = { ADMIN_TOKEN, REDIS_KEY_PREFIX: PREFIX };
  const stage = useStage({
    backends: { a: () => named('A'), b: () => named('B'), c: () => named('C') },
    yaml: ({ a }) => routingTo(a.url),
    gatehouse: { env, configSync: true },
    more: { two: { env, configSync: true } },
  });
  const later: TestGatehouse[] = [];
  afterAll(async () => {
    await Promise.all(later.map((g) => g.close()));
  });
  const one = () => stage.gh;
  const two = () => stage.more.two;
  const who = async (g: TestGatehouse) => (await fetch(`${g.url}/api/who`)).text();
  const current = async (g: TestGatehouse) =>
    (await (await fetch(`${g.url}/admin/config`, { headers: { 'x-admin-token': ADMIN_TOKEN } })).json()) as Record<string, unknown> & {
      version: number;
    };
  const put = (g: TestGatehouse, text: string, version: number) =>
    fetch(`${g.url}/admin/config`, {
      method: 'PUT',
      body: text,
      headers: { 'x-admin-token': ADMIN_TOKEN, 'content-type': 'application/yaml', 'if-match': `"${version}"` },
    });
  const startAnother = (yaml: string) =>
    retryOnPortRace(() => startGatehouse({ idp: stage.idp, redisUrl: inject('redisUrl'), yaml, env, configSync: true })).then((g) => {
      later.push(g);
      return g;
    });

  it('a second replica started on the same file serves the same version', async () => {
    expect(await who(one())).toBe('A');
    expect(await who(two())).toBe('A');
    const [v1, v2] = [await current(one()), await current(two())];
    expect(v2.version).toBe(v1.version);
    expect(v2.digest).toBe(v1.digest);
  });

  it('a PUT on one replica reroutes the other within 2 s', async () => {
    const { version } = await current(one());
    const res = await put(one(), routingTo(stage.backends.b.url), version);
    expect(res.status).toBe(200);
    expect(await who(one())).toBe('B');
    const took = await waitUntil(async () => (await who(two())) === 'B', 2000, 'the other replica rerouted');
    expect(took).toBeLessThan(2000);
    expect(await current(two())).toMatchObject({ version: version + 1, source: 'admin', by: 'admin-token', fromAnotherReplica: true });
  });

  it('a replica started afterwards on the old file comes up with the new routing from its first request', async () => {
    const third = await startAnother(routingTo(stage.backends.a.url));
    expect(await who(third)).toBe('B');
    expect(
      third.logs.some((l) => l['msg'] === 'config.yml is a version the cluster has replaced: serving the cluster version from the store'),
    ).toBe(true);
    expect((await current(third)).version).toBe((await current(one())).version);
  });

  it('two PUTs from the same version on two replicas at once: one wins, the other gets 412, and all agree', async () => {
    const { version } = await current(one());
    const [r1, r2] = await Promise.all([
      put(one(), routingTo(stage.backends.a.url), version),
      put(two(), routingTo(stage.backends.c.url), version),
    ]);
    const statuses = [r1.status, r2.status].sort();
    expect(statuses).toEqual([200, 412]);
    const loser = r1.status === 412 ? r1 : r2;
    expect(await loser.json()).toMatchObject({ error: 'precondition_failed' });
    const winner = r1.status === 200 ? 'A' : 'C';
    await waitUntil(async () => (await who(one())) === winner && (await who(two())) === winner, 2000, 'both replicas on the winner');
    expect((await current(one())).version).toBe(version + 1);
    expect((await current(two())).version).toBe(version + 1);
  });

  it('a replica started with a file the cluster never had makes it the next version, and the others follow', async () => {
    const before = (await current(one())).version;
    const fourth = await startAnother(routingTo(stage.backends.c.url, '# changed while this replica was down\n'));
    expect(await who(fourth)).toBe('C');
    await waitUntil(async () => (await who(one())) === 'C' && (await who(two())) === 'C', 2000, 'the others follow');
    expect(await current(one())).toMatchObject({ version: before + 1, source: 'startup' });
  });
});
