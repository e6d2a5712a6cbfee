import type { ErrorCode, GatehouseError } from '../errors.ts';
import type { Logger } from './logger.ts';

/** A shared dependency whose outage fails many requests at once. */
export type Dependency = 'redis' | 'idp';

/** The dependency a client-visible code blames, if it blames one. */
export function dependencyOf(code: ErrorCode): Dependency | undefined {
  if (code === 'session_store_unavailable') return 'redis';
  if (code === 'idp_unavailable' || code === 'idp_error') return 'idp';
  return undefined;
}

/**
 * Log lines for dependency outages, instead of one error line per failed request: a Redis outage once wrote
 * 1,158 lines with stack traces in 6 s, burying everything else. The request itself is still recorded by its
 * access line (which carries the code).
 */
export interface OutageLog {
  /**
   * Records a request that failed with `err`. For a dependency failure (`dependencyOf` its code) this logs the
   * first one of an outage at once, with its cause, then at most one line per interval with how many requests
   * failed since, and returns true. Any other error is not this log's business: false, and the caller logs it.
   */
  failed(err: GatehouseError, reqId: string): boolean;
  /**
   * `dependency` answered. Ends an outage under way with one line carrying how many requests it failed; costs a
   * property read when there is none, so it may be called on every answer.
   */
  succeeded(dependency: Dependency): void;
}

interface Outage {
  readonly since: number;
  lastLineAt: number;
  sinceLine: number;
  total: number;
}

export interface OutageLogOptions {
  /** At most one "still unavailable" line per dependency per interval. Default 10 s. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/**
 * An OutageLog on `log`. It sets no timer: the line for an interval is written by the first failure after it, and
 * the failures of the last, partial interval are counted in the "recovered" line (its `affected` is the whole
 * outage's count).
 */
export function createOutageLog(log: Logger, options: OutageLogOptions = {}): OutageLog {
  const intervalMs = options.intervalMs ?? 10_000;
  const now = options.now ?? Date.now;
  if (!(intervalMs > 0)) throw new TypeError(`outage log: intervalMs must be a positive number, got ${intervalMs}`);
  const outages: Record<Dependency, Outage | undefined> = { redis: undefined, idp: undefined };
  return {
    failed(err, reqId) {
      const dependency = dependencyOf(err.code);
      if (dependency === undefined) return false;
      const t = now();
      const outage = outages[dependency];
      if (outage === undefined) {
        outages[dependency] = { since: t, lastLineAt: t, sinceLine: 0, total: 1 };
        log.error({ dependency, code: err.code, reqId, detail: err.logDetail, err: err.cause ?? err }, 'dependency unavailable');
        return true;
      }
      outage.total += 1;
      outage.sinceLine += 1;
      if (t - outage.lastLineAt >= intervalMs) {
        log.error(
          { dependency, code: err.code, affected: outage.sinceLine, totalAffected: outage.total, sinceMs: t - outage.since },
          'dependency still unavailable',
        );
        outage.lastLineAt = t;
        outage.sinceLine = 0;
      }
      return true;
    },
    succeeded(dependency) {
      const outage = outages[dependency];
      if (outage === undefined) return;
      outages[dependency] = undefined;
      log.info({ dependency, affected: outage.total, outageMs: now() - outage.since }, 'dependency recovered');
    },
  };
}
