import { isIP } from 'node:net';
import type { Principal } from '../auth/identity.ts';
import type { RateLimitSetting } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import type { OutageLog } from '../observability/outage-log.ts';
import type { RateCount, RateCounter, RateWindow } from '../store/rate-counter.ts';

/** A limit compiled at load: what the store counts, and its RateLimit-Policy field, built once. */
export interface RateLimit extends RateWindow {
  /** `"id";q=N;w=S` (draft-ietf-httpapi-ratelimit-headers §4). */
  readonly policyField: string;
}

/** /auth/* per client IP when config.yml says nothing: a person logs in a few times a minute, a script far more. */
export const DEFAULT_AUTH_LIMIT = { requests: 60, windowSeconds: 60, burst: 0 } as const;

/**
 * A config entry → the limit admission applies, or undefined for none. `id` names its buckets: the top-level api
 * limit is one bucket per caller across every mapping that inherits it, a mapping's own is a bucket of its own.
 */
export function compileRateLimit(
  id: string,
  setting: RateLimitSetting | undefined,
  onStoreError: RateWindow['onStoreError'],
): RateLimit | undefined {
  if (setting === undefined || setting === false) return undefined;
  const { requests, windowSeconds = 60, burst = 0 } = setting;
  return Object.freeze({ id, requests, windowSeconds, burst, onStoreError, policyField: `"${id}";q=${requests};w=${windowSeconds}` });
}

/**
 * The bucket of an anonymous caller: its address, an IPv6 one by its /64. One IPv6 host usually holds a whole /64
 * and picks addresses in it at will (RFC 8981), so a per-address key would give it 2^64 buckets.
 */
export function clientKey(ip: string): string {
  if (isIP(ip) !== 6) return `ip:${ip}`;
  return `ip6:${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, lowercase without leading zeros (an embedded IPv4 tail included). */
function ipv6Groups(ip: string): string[] {
  const zone = ip.indexOf('%');
  let text = (zone === -1 ? ip : ip.slice(0, zone)).toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16).toString(16));
}

/**
 * The bucket of an identified caller: its session (one session spread over many addresses is one caller), or a
 * bearer token's subject. Never the address: fifty users behind one NAT are fifty callers (BBA §6.1.3.5).
 */
export function principalKey(principal: Principal): string {
  if (principal.kind === 'session' && principal.sessionKey !== undefined) return `s:${principal.sessionKey}`;
  return `sub:${String(principal.claims['sub'])}`;
}

export interface RateLimiter {
  /**
   * Counts one request on `key` against `limit`. Answers with the RateLimit header fields for the admitted response
   * ([name, value, ...]; undefined when the count could not be made and the limit failed open), or throws 429
   * too_many_requests carrying Retry-After and the same fields: synchronously when this process holds the answer
   * (store/rate-counter.ts leases), else through the returned promise.
   */
  check(limit: RateLimit, key: string, reqId: string): readonly string[] | undefined | Promise<readonly string[] | undefined>;
  /** Requests admitted uncounted because the store failed (limits with `onStoreError: 'throw'`), since start. */
  failedOpen(): number;
}

/**
 * The one limiter /auth (Express) and /api (admission, HTTP and WebSocket alike) use. Counts live in the store, so
 * replicas share them; a limit with `onStoreError: 'throw'` (/api) fails open when the store fails (sessions fail
 * closed already, so only bearer and anonymous traffic passes uncounted), one log line per outage.
 * @see https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/ (RateLimit, RateLimit-Policy)
 */
export function createRateLimiter(deps: { readonly counter: RateCounter; readonly outages: OutageLog }): RateLimiter {
  let failedOpen = 0;
  const answer = (limit: RateLimit, count: RateCount): readonly string[] => {
    const seconds = Math.max(1, Math.ceil(count.resetMs / 1000));
    const fields = ['RateLimit-Policy', limit.policyField, 'RateLimit', `"${limit.id}";r=${count.remaining};t=${seconds}`];
    if (count.allowed) return fields;
    throw new GatehouseError('too_many_requests', {
      headers: ['Retry-After', String(seconds), ...fields],
      logDetail: `rate limit ${limit.id} reached`,
    });
  };
  return {
    check(limit, key, reqId) {
      const count = deps.counter.hit(limit, key);
      if (!(count instanceof Promise)) return answer(limit, count);
      return count.then(
        (c) => answer(limit, c),
        (err: unknown) => {
          failedOpen++;
          deps.outages.failed(
            new GatehouseError('session_store_unavailable', { cause: err, logDetail: `rate limit ${limit.id} not enforced (fails open)` }),
            reqId,
          );
          return undefined;
        },
      );
    },
    failedOpen: () => failedOpen,
  };
}
