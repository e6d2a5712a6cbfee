import { describe, expect, it } from 'vitest';
import { cleanTracestate, createTraceIds, parseTraceparent } from '../../src/observability/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent (W3C Trace Context)', () => {
  it.each([
    ['version 00', `00-${TRACE}-${SPAN}-01`, { traceId: TRACE, parentId: SPAN, flags: '01' }],
    ['not sampled', `00-${TRACE}-${SPAN}-00`, { traceId: TRACE, parentId: SPAN, flags: '00' }],
    [
      'a later version, read by its first four fields',
      `cc-${TRACE}-${SPAN}-01-what-comes-next`,
      { traceId: TRACE, parentId: SPAN, flags: '01' },
    ],
  ])('reads %s', (_label, value, expected) => {
    expect(parseTraceparent(value)).toEqual(expected);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'not-a-traceparent'],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version 00 with more after it', `00-${TRACE}-${SPAN}-01-extra`],
    ['a later version glued to more', `cc-${TRACE}-${SPAN}-01extra`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-011`],
    ['the empty string a repeated header reads as', ''],
    ['a header-injection attempt', `00-${TRACE}-${SPAN}-01\r\nx-evil: 1`],
  ])('refuses %s', (_label, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe('cleanTracestate', () => {
  it('keeps a list of visible ASCII up to 512 characters and drops anything else', () => {
    expect(cleanTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')).toBe('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    expect(cleanTracestate('a=1\u0000')).toBeUndefined();
    expect(cleanTracestate('a=é')).toBeUndefined();
    expect(cleanTracestate(`a=${'x'.repeat(511)}`)).toBeUndefined();
    expect(cleanTracestate('')).toBeUndefined();
  });
});

describe('createTraceIds', () => {
  it('makes lower-case hex ids of the right length, all different, across pool refills', () => {
    const ids = createTraceIds();
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = ids.traceId();
      const s = ids.spanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      seen.add(t);
    }
    expect(seen.size).toBe(1000);
  });
});
