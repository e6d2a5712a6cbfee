import { afterEach, describe, expect, it } from 'vitest';
import { createConfigState, type ConfigState } from '../../src/admin/config-state.ts';
import { lineDiff } from '../../src/cli/diff.ts';
import { loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMemoryStore } from '../../src/store/memory.ts';
import type { Store } from '../../src/store/store.ts';
import { writeConfigFile } from '../helpers/gatehouse.ts';
import { waitUntil } from '../helpers/token-kit.ts';

const ENV = { NODE_ENV: 'test', APP_BASE_URL: 'http://127.0.0.1:8080', OIDC_ISSUER: 'http://127.0.0.1:9', OIDC_CLIENT_ID: 'x' };
const routing = (port: number) => `mappings:\n  - frontendHost: "*"\n    backend: http://127.0.0.1:${port}\n`;
const load = (text: string) => loadConfigText(ENV, text, 'config.yml');
const log = createLogger({ level: 'silent' });

/** A replica whose pub/sub messages never arrive (a subscription that was down): only the poll can tell it. */
const deaf = (store: Store): Store => Object.assign(Object.create(store) as Store, { subscribe: async () => undefined });

describe('config state without the Bus', () => {
  const started: ConfigState[] = [];
  afterEach(() => {
    for (const s of started.splice(0)) s.close();
  });
  const replica = async (store: Store, text: string, pollMs = 100) => {
    const applied: Config[] = [];
    const state = createConfigState({
      store,
      log,
      initial: load(text),
      initialText: text,
      path: writeConfigFile(text),
      load,
      apply: async (c) => {
        applied.push(c);
      },
      pollMs,
    });
    await state.start();
    started.push(state);
    return { state, applied };
  };

  it('a replica that missed the message catches up from the store on its next poll', async () => {
    const store = createMemoryStore();
    const one = await replica(store, routing(1001));
    const two = await replica(deaf(store), routing(1001));
    expect(two.state.current().version).toBe(one.state.current().version);
    await one.state.put(routing(1002), { kind: 'admin', by: 'test' }, one.state.current().version);
    await waitUntil(() => two.applied.length === 1, 2000, 'the poll applied it');
    expect(two.state.routing().mappings[0]?.backend).toBe('http://127.0.0.1:1002');
    expect(two.state.current()).toMatchObject({ version: 2, source: { kind: 'admin', by: 'test' } });
  });

  it('a stale If-Match and a lost race are both precondition_failed; nothing is applied', async () => {
    const store = createMemoryStore();
    const one = await replica(store, routing(1001));
    const v = one.state.current().version;
    await expect(one.state.put(routing(1002), { kind: 'admin', by: 'a' }, v + 1)).rejects.toMatchObject({ code: 'precondition_failed' });
    const results = await Promise.allSettled([
      one.state.put(routing(1003), { kind: 'admin', by: 'a' }, v),
      one.state.put(routing(1004), { kind: 'admin', by: 'b' }, v),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(one.state.current().version).toBe(v + 1);
    expect(one.applied).toHaveLength(1);
  });
});

describe('lineDiff (config apply)', () => {
  it('marks removed and added lines with context and a line number, and is empty for equal texts', () => {
    const before = 'a\nb\nc\nd\ne\nf\ng\n';
    const after = 'a\nb\nc\nD\ne\nf\ng\nh\n';
    expect(lineDiff(before, before)).toBe('');
    expect(lineDiff(before, after)).toBe('@@ line 2\n  b\n  c\n- d\n+ D\n  e\n  f\n  g\n+ h\n  \n');
  });
});
