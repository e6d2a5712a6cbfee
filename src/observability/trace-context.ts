import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context: the `traceparent` a request arrived with, when it is well-formed, and the ids Gatehouse makes
 * when it starts a trace or a hop of its own.
 * @see https://www.w3.org/TR/trace-context/#traceparent-header
 */
export interface TraceParent {
  readonly traceId: string;
  readonly parentId: string;
  /** The trace-flags byte as two hex digits (`01`: sampled). */
  readonly flags: string;
}

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * The header's fields, or undefined when it is malformed: wrong length, upper-case or non-hex digits, version ff, an
 * all-zero trace or parent id. A version after 00 is read by its first four fields, as the spec asks; anything it
 * adds after them is dropped with the rest of the header, which Gatehouse always rewrites.
 * @see https://www.w3.org/TR/trace-context/#versioning-of-traceparent
 */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  if (value === undefined || value.length < 55) return undefined;
  const version = value.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return undefined;
  if (version === '00' ? value.length !== 55 : value.length > 55 && value[55] !== '-') return undefined;
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId, parentId, flags };
}

/**
 * A `tracestate` worth passing on: at most 512 characters of visible ASCII (the spec lets a hop truncate to 512 and
 * drop what it cannot parse); anything else is dropped rather than forwarded.
 * @see https://www.w3.org/TR/trace-context/#tracestate-limits
 */
export function cleanTracestate(value: string | undefined): string | undefined {
  if (value === undefined || value.length === 0 || value.length > 512) return undefined;
  return /^[\x20-\x7e]+$/.test(value) ? value : undefined;
}

/** Random trace and span ids from a pooled buffer: one getrandom call per few hundred ids, not one per request. */
export interface TraceIds {
  traceId(): string;
  spanId(): string;
}

export function createTraceIds(): TraceIds {
  const pool = Buffer.allocUnsafe(4096);
  // The whole pool as hex, made once per refill: an id is then a slice of it, not a native call of its own.
  let hex = '';
  let at = pool.length;
  const take = (n: number): string => {
    if (at + n > pool.length) {
      randomFillSync(pool);
      hex = pool.toString('hex');
      at = 0;
    }
    const id = hex.slice(at * 2, (at + n) * 2);
    at += n;
    // All zeros is the spec's invalid id; 2^-64 at worst, but cheap to rule out.
    return id === ZERO_TRACE || id === ZERO_SPAN ? take(n) : id;
  };
  return { traceId: () => take(16), spanId: () => take(8) };
}
