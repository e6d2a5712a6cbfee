import { afterAll, beforeAll } from 'vitest';

export interface Closable {
  close(): Promise<void>;
}

/** A loopback server a test starts: a backend, a relay. */
export interface Server extends Closable {
  readonly url: string;
}

/** Named start functions, e.g. `{ sse: () => startSseBackend(…), ws: startWsBackend }`. */
export type Starters = Record<string, () => Promise<Server>>;

/** What `Starters` started, under the same names. */
export type StartedAll<S extends Starters> = { readonly [K in keyof S]: Awaited<ReturnType<S[K]>> };

/** Starts each server in order; when one fails, closes those already started and rethrows. */
export async function startAll<S extends Starters>(starters: S): Promise<StartedAll<S> & Closable> {
  const started: Record<string, Server> = {};
  const close = () => Promise.all(Object.values(started).map((s) => s.close())).then(() => undefined);
  try {
    for (const [name, start] of Object.entries(starters)) started[name] = await start();
  } catch (err) {
    await close();
    throw err;
  }
  return { ...(started as StartedAll<S>), close };
}

/** Runs `then` on what was started; when it fails, closes that and rethrows. */
export async function closeOnError<C extends Closable, T>(started: C, then: (started: C) => Promise<T>): Promise<T> {
  try {
    return await then(started);
  } catch (err) {
    await started.close();
    throw err;
  }
}

/**
 * Registers beforeAll/afterAll for the enclosing describe block: `start` runs in beforeAll and what it returns
 * is closed in afterAll. The returned function reads it, and fails loudly when called before that beforeAll.
 */
export function useStarted<T extends Closable>(who: string, start: () => Promise<T>): () => T {
  let value: T | undefined;
  beforeAll(async () => {
    value = await start();
  });
  afterAll(async () => {
    await value?.close();
  });
  return () => {
    if (value === undefined) throw new Error(`${who}: read its fields in a test or hook, after its beforeAll`);
    return value;
  };
}
