import { createHash, randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config/types.ts';
import { ConfigError, GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { compilePolicy } from '../policy/runtime.ts';
import type { Bus, KeyValue } from '../store/store.ts';

/** Who made a configuration version: the admin token holder, an operator (by `sub`), or a file edit on a replica. */
export type ConfigSource =
  | { readonly kind: 'admin'; readonly by: string }
  | { readonly kind: 'file'; readonly by: string }
  | { readonly kind: 'startup'; readonly by: string };

/** One version of config.yml as the cluster knows it (store key `cfg:current`, history `cfg:v:<n>`). */
export interface ConfigVersion {
  readonly version: number;
  readonly text: string;
  /** SHA-256 of the text, hex: what audit lines and the file comparison use. */
  readonly digest: string;
  readonly source: ConfigSource;
  readonly at: string;
  /** The replica that made it. */
  readonly replica: string;
}

/** A text validated exactly as start-up validates config.yml (`label` says where it came from, for callers that name it). */
export type LoadRouting = (text: string, label: string) => Config;

export interface ConfigState {
  /** The version this replica serves now (text included: redact before showing it). */
  current(): ConfigVersion;
  /** The running configuration's routing, for what reads it per request (admin.requireClaims). */
  routing(): Config['routing'];
  /** The replica's id, as `replica` fields name it. */
  readonly replica: string;
  /** Validates, commits in the store (If-Match: `expected`), writes config.yml, applies. Throws config_invalid / precondition_failed. */
  put(text: string, source: ConfigSource, expected: number | '*'): Promise<{ version: ConfigVersion; fileWritten: boolean }>;
  /** Re-reads config.yml; a valid file that differs from the running version becomes the cluster's next version. */
  reloadFile(source: ConfigSource): Promise<{ version: ConfigVersion; changed: boolean }>;
  /** The last `limit` versions, newest first. */
  history(limit: number): Promise<ConfigVersion[]>;
  /** Reads the store, adopts the cluster's version or publishes the file's, subscribes, starts watching. */
  start(): Promise<void>;
  close(): void;
}

const CURRENT = 'cfg:current';
const versionKey = (n: number) => `cfg:v:${n}`;
const DIGESTS = 'cfg:digests';
const CHANNEL = 'config-changed';
/** The cluster's configuration matters as long as the cluster runs: ten years, renewed by every change. */
const CONFIG_TTL_MS = 10 * 365 * 24 * 3600 * 1000;
export const HISTORY_MAX = 100;

export const digestOf = (text: string): string => createHash('sha256').update(text).digest('hex');

function parseVersion(raw: string | null): ConfigVersion | undefined {
  if (raw === null) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<ConfigVersion>;
    if (typeof value.version === 'number' && typeof value.text === 'string' && typeof value.digest === 'string' && value.source) {
      return value as ConfigVersion;
    }
  } catch {
    // fall through: a record another writer mangled is treated as absent and logged by the caller
  }
  return undefined;
}

/** The file's problems as one list for the response; a thrown value that is not a ConfigError is a bug, kept as such. */
function invalid(err: unknown): never {
  if (err instanceof ConfigError) throw new GatehouseError('config_invalid', { details: { problems: err.problems }, cause: err });
  throw err;
}

/**
 * config.yml as the cluster's shared, versioned state. The store holds the current version (text, digest, who, when)
 * and its history; a change is committed with a compare-and-set on `cfg:current`, so versions only grow and of two
 * writers racing from the same version one wins and the other gets 412. Every replica is told on the Bus and
 * re-reads the store (the message carries no configuration, so a lost or forged message changes nothing), and
 * checks the store every few seconds besides, for messages missed while its subscription was down.
 *
 * At start-up the store wins over a file the cluster has already seen (a replica that was down, an old ConfigMap);
 * a file the cluster has never seen is an edit made while this replica was down and becomes the next version.
 */
export function createConfigState(deps: {
  store: KeyValue & Bus;
  log: Logger;
  /** The configuration this process started with (already validated), and the file it came from. */
  initial: Config;
  initialText: string;
  path: string;
  load: LoadRouting;
  /** Swaps the running routing (app.reload). */
  apply: (config: Config) => Promise<void>;
  now?: () => number;
  pollMs?: number;
  debounceMs?: number;
}): ConfigState {
  const { store, log, path } = deps;
  const now = deps.now ?? Date.now;
  const replica = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
  let running: ConfigVersion = {
    version: 0,
    text: deps.initialText,
    digest: digestOf(deps.initialText),
    source: { kind: 'startup', by: `file on ${replica}` },
    at: new Date(now()).toISOString(),
    replica,
  };
  let routing = deps.initial.routing;
  let applying: Promise<void> = Promise.resolve();
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let closed = false;

  /** What start-up does with a file: validated, then its policy (route rules, patterns) compiled, which can refuse it too. */
  const loadAndCompile = (text: string, label: string): Config => {
    const config = deps.load(text, label);
    compilePolicy(config);
    return config;
  };
  const validate = (text: string, label: string): Config => {
    try {
      return loadAndCompile(text, label);
    } catch (err) {
      return invalid(err);
    }
  };

  let refused: string | undefined;
  /** Makes `next` the running version (validating it unless `config` is its validated form). */
  const applyVersion = (next: ConfigVersion, config: Config | undefined): void => {
    if (next.digest === running.digest) {
      running = next;
      return;
    }
    if (next.digest === refused && config === undefined) return;
    let loaded: Config;
    try {
      loaded = config ?? loadAndCompile(next.text, `cluster version ${next.version}`);
    } catch (err) {
      // Another replica accepted it; this one's environment (an ${VAR} it lacks) does not: keep serving what runs.
      refused = next.digest;
      log.error(
        { version: next.version, problems: err instanceof ConfigError ? err.problems : [String(err)] },
        'configuration not reloaded: the running one stays',
      );
      return;
    }
    const previous = running;
    running = next;
    routing = loaded.routing;
    log.info(
      { version: next.version, from: previous.version, source: next.source, mappings: loaded.routing.mappings.length, digest: next.digest },
      'configuration reloaded',
    );
    void deps.apply(loaded).then(() => log.info('previous backend connections closed'));
  };

  /**
   * Serves what the store says is current: the store is the truth, so a version is never compared with what runs
   * (after Redis lost its data, versions start again at 1). Reads and applies run one at a time, so a slow read
   * never lands after a later one. `committed` is this replica's own change and its validated form: applied
   * as it is when the store cannot be read right after the commit.
   */
  const syncFromStore = (committed?: { version: ConfigVersion; config: Config }): Promise<void> => {
    const run = applying.then(async () => {
      let target: ConfigVersion | undefined;
      try {
        target = (await readCurrent()).version;
      } catch (err) {
        if (!committed) throw err;
        target = committed.version;
      }
      if (target === undefined || (target.version === running.version && target.digest === running.digest)) return;
      applyVersion(target, committed?.version.digest === target.digest ? committed.config : undefined);
    });
    applying = run.catch(() => undefined);
    return run;
  };

  const readCurrent = async (): Promise<{ raw: string | null; version: ConfigVersion | undefined }> => {
    const raw = await store.get(CURRENT);
    const version = parseVersion(raw);
    if (raw !== null && version === undefined)
      log.error('the stored configuration record is unreadable; it will be replaced by the next change');
    return { raw, version };
  };

  /** The compare-and-set that makes a version: throws precondition_failed when `expected` is stale or another writer won. */
  /** A change the store cannot version is no change: refused as a store outage, the running routing stays. */
  const unavailable = (err: unknown): never => {
    if (err instanceof GatehouseError) throw err;
    throw new GatehouseError('session_store_unavailable', { cause: err, logDetail: 'configuration change not stored' });
  };
  const commit = (text: string, source: ConfigSource, expected: number | '*' | 'seen'): Promise<ConfigVersion> =>
    commitInStore(text, source, expected).catch(unavailable);

  const commitInStore = async (text: string, source: ConfigSource, expected: number | '*' | 'seen'): Promise<ConfigVersion> => {
    const { raw, version: current } = await readCurrent();
    const currentNumber = current?.version ?? 0;
    if (typeof expected === 'number' && expected !== currentNumber) {
      throw new GatehouseError('precondition_failed', { details: { currentVersion: currentNumber }, logDetail: `If-Match ${expected}` });
    }
    const next: ConfigVersion = {
      version: currentNumber + 1,
      text,
      digest: digestOf(text),
      source,
      at: new Date(now()).toISOString(),
      replica,
    };
    const nextRaw = JSON.stringify(next);
    const won =
      raw === null || current === undefined
        ? await store.setIfAbsent(CURRENT, nextRaw, CONFIG_TTL_MS)
        : await store.compareAndSet(CURRENT, raw, nextRaw, CONFIG_TTL_MS);
    if (!won) {
      throw new GatehouseError('precondition_failed', {
        details: { currentVersion: currentNumber + 1 },
        logDetail: 'another change won the race',
      });
    }
    await store.set(versionKey(next.version), nextRaw, CONFIG_TTL_MS);
    // The history is what GET /admin/config/history can show: the last HISTORY_MAX versions.
    if (next.version > HISTORY_MAX) await store.del(versionKey(next.version - HISTORY_MAX)).catch(() => 0);
    await store.setAdd(DIGESTS, next.digest, CONFIG_TTL_MS);
    await store.publish(CHANNEL, String(next.version)).catch((err: unknown) => log.error({ err }, 'configuration change publish failed'));
    return next;
  };

  const writeFileAtomically = async (text: string): Promise<boolean> => {
    // A reader (this replica's watcher, a person's editor, a sidecar) sees the old file or the new one, never half.
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeFile(temp, text, { mode: 0o640 });
      await rename(temp, path);
      return true;
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      log.warn(
        { err, path },
        'config.yml not written (read-only mount?): the change holds in the store and on every replica until the next restart from a new file',
      );
      return false;
    }
  };

  /** What Bus messages and the poll call. */
  const catchUp = (): Promise<void> => syncFromStore();

  const fileChanged = async (): Promise<void> => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return;
    }
    const digest = digestOf(text);
    if (digest === running.digest) return;
    // A text the cluster already had is a stale read (this replica's own write racing the Bus, a shared volume
    // written by another replica), not an edit: going back to an earlier version takes a PUT, SIGHUP or reload.
    if ((await store.setMembers(DIGESTS).catch(() => [] as string[])).includes(digest)) {
      log.debug({ digest }, 'config.yml holds a version the cluster already had: not applied automatically');
      return;
    }
    try {
      await state.reloadFile({ kind: 'file', by: `file edit on ${replica}` });
    } catch (err) {
      if (err instanceof GatehouseError && err.code === 'config_invalid') {
        log.error({ problems: err.details?.['problems'] }, 'configuration not reloaded: the running one stays');
      } else log.error({ err }, 'configuration file change not applied');
    }
  };

  let synced = false;
  /** The store's version against this replica's file: who wins is in docs/admin.md ("Across replicas"). */
  const initialSync = async (): Promise<void> => {
    const { version: stored } = await readCurrent();
    if (stored === undefined) {
      // The first replica of a cluster: its file becomes version 1 (a racing replica's setIfAbsent loses and adopts).
      try {
        running = await commit(running.text, { kind: 'startup', by: `file on ${replica}` }, 0);
      } catch (err) {
        if (!(err instanceof GatehouseError && err.code === 'precondition_failed')) throw err;
        await catchUp();
      }
    } else if (stored.digest === running.digest) {
      running = stored;
    } else if ((await store.setMembers(DIGESTS)).includes(running.digest)) {
      log.warn(
        { fileDigest: running.digest, version: stored.version, digest: stored.digest, source: stored.source, at: stored.at },
        'config.yml is a version the cluster has replaced: serving the cluster version from the store',
      );
      await syncFromStore();
    } else {
      log.info(
        { fileDigest: running.digest, version: stored.version + 1 },
        'config.yml was changed while this replica was down: it becomes the cluster version',
      );
      try {
        running = await commit(running.text, { kind: 'startup', by: `file on ${replica}` }, stored.version);
      } catch (err) {
        if (!(err instanceof GatehouseError && err.code === 'precondition_failed')) throw err;
        await catchUp();
      }
    }
    synced = true;
  };

  const state: ConfigState = {
    replica,
    current: () => running,
    routing: () => routing,

    async put(text, source, expected) {
      const config = validate(text, 'PUT /admin/config');
      const version = await commit(text, source, expected);
      const fileWritten = await writeFileAtomically(text);
      await syncFromStore({ version, config });
      return { version, fileWritten };
    },

    async reloadFile(source) {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        throw new GatehouseError('config_invalid', {
          details: { problems: [`GATEHOUSE_CONFIG ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`] },
        });
      }
      const config = validate(text, path);
      const digest = digestOf(text);
      if (digest === running.digest) return { version: running, changed: false };
      for (let attempt = 1; ; attempt++) {
        // This replica's own PUT rewrote the file, a shared volume carries another replica's, or the watch and a
        // SIGHUP or reload of the same edit raced and the other committed it: nothing new.
        const { version: stored } = await readCurrent().catch(unavailable);
        if (stored?.digest === digest) {
          await syncFromStore({ version: stored, config });
          return { version: stored, changed: false };
        }
        try {
          const version = await commit(text, source, 'seen');
          await syncFromStore({ version, config });
          return { version, changed: true };
        } catch (err) {
          if (!(err instanceof GatehouseError && err.code === 'precondition_failed') || attempt >= 3) throw err;
        }
      }
    },

    async history(limit) {
      const top = running.version;
      const out: ConfigVersion[] = [];
      for (let n = top; n > 0 && out.length < limit; n--) {
        const v = parseVersion(await store.get(versionKey(n)));
        if (v) out.push(v);
      }
      return out;
    },

    async start() {
      try {
        await store.subscribe(CHANNEL, () => {
          catchUp().catch((err: unknown) => log.warn({ err }, 'configuration change not read from the store'));
        });
        await initialSync();
      } catch (err) {
        // Redis not answering must not keep Gatehouse from serving: the file runs until the poll reaches Redis.
        log.warn({ err }, 'the cluster configuration could not be read from the store yet: serving config.yml until it answers');
      }
      const every = deps.pollMs ?? 5000;
      poll = setInterval(() => {
        (synced ? catchUp() : initialSync()).catch((err: unknown) => log.debug({ err }, 'configuration poll failed'));
      }, every);
      poll.unref();
      try {
        // The directory, not the file: editors and ConfigMap updates replace the file (rename), which ends a file watch.
        watcher = watch(dirname(path), (_event, name) => {
          if (closed || (name !== null && name !== basename(path))) return;
          clearTimeout(debounce);
          debounce = setTimeout(() => void fileChanged(), deps.debounceMs ?? 300);
          debounce.unref();
        });
        watcher.on('error', (err) => log.warn({ err }, 'config.yml watch failed: edits apply on SIGHUP or POST /admin/config/reload'));
      } catch (err) {
        log.warn({ err }, 'config.yml cannot be watched: edits apply on SIGHUP or POST /admin/config/reload');
      }
    },

    close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(debounce);
      watcher?.close();
    },
  };
  return state;
}
