import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { header, openWs, send, startBackend, startWsBackend, type TestBackend, type TestWsBackend } from '../helpers/backends.ts';
import type { TestGatehouse } from '../helpers/gatehouse.ts';
import { mappingsYaml, startBareGatehouse } from '../helpers/proxy-stack.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const CLIENT = `00-${TRACE}-${SPAN}-01`;
const STATE = 'vendor=opaque-value';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * W3C Trace Context from clients: a trace id is the caller's choice, so it is believed only from a peer TRUST_PROXY
 * trusts; from anyone else (and whenever it is malformed) the backend gets a traceparent of a new trace and no
 * tracestate. Either way each hop through Gatehouse gets a parent id of its own, and the access line names the trace.
 */
describe('traceparent and tracestate from clients', () => {
  let backend: TestBackend;
  let wsBackend: TestWsBackend;
  let direct: TestGatehouse;
  let behindProxy: TestGatehouse;
  beforeAll(async () => {
    backend = await startBackend();
    wsBackend = await startWsBackend();
    const yaml = mappingsYaml([
      { frontendHost: '*', pathPrefix: '/ws', backend: wsBackend.url, auth: 'none' },
      { frontendHost: '*', backend: backend.url, auth: 'none' },
    ]);
    direct = await startBareGatehouse(yaml);
    behindProxy = await startBareGatehouse(yaml, { TRUST_PROXY: '127.0.0.1' });
  });
  afterAll(async () => {
    await direct?.close();
    await behindProxy?.close();
    await backend?.close();
    await wsBackend?.close();
  });

  const forwarded = async (gh: TestGatehouse, headers: string[]) => {
    const res = await send(gh.url, { path: '/api/t', headers });
    expect(res.status).toBe(200);
    const rec = backend.last();
    const values = rec.headers.get('traceparent') ?? [];
    expect(values, 'exactly one traceparent reaches the backend').toHaveLength(1);
    const m = TRACEPARENT.exec(values[0] as string);
    if (!m) throw new Error(`malformed traceparent forwarded: ${values[0]}`);
    return {
      traceId: m[1] as string,
      parentId: m[2] as string,
      flags: m[3] as string,
      tracestate: header(rec, 'tracestate'),
      reqId: header(rec, 'x-request-id'),
    };
  };
  const accessLine = (gh: TestGatehouse, reqId: string | undefined) => gh.logs.find((l) => l['msg'] === 'proxy' && l['reqId'] === reqId);

  it('from an untrusted client: a new trace, the client ids and tracestate not forwarded', async () => {
    const got = await forwarded(direct, ['traceparent', CLIENT, 'tracestate', STATE]);
    expect(got.traceId).not.toBe(TRACE);
    expect(got.parentId).not.toBe(SPAN);
    expect(got.tracestate).toBeUndefined();
    expect(accessLine(direct, got.reqId)?.['trace']).toBe(got.traceId);
  });

  it('from a trusted proxy: the same trace, Gatehouse as a new parent, flags and tracestate kept', async () => {
    const got = await forwarded(behindProxy, ['traceparent', CLIENT, 'tracestate', STATE]);
    expect(got.traceId).toBe(TRACE);
    expect(got.parentId).not.toBe(SPAN);
    expect(got.flags).toBe('01');
    expect(got.tracestate).toBe(STATE);
    expect(accessLine(behindProxy, got.reqId)?.['trace']).toBe(TRACE);
  });

  it.each([
    ['garbage', ['traceparent', 'garbage']],
    ['upper-case hex', ['traceparent', CLIENT.toUpperCase()]],
    ['version ff', ['traceparent', `ff-${TRACE}-${SPAN}-01`]],
    ['an all-zero trace id', ['traceparent', `00-${'0'.repeat(32)}-${SPAN}-01`]],
    ['two traceparent headers', ['traceparent', CLIENT, 'traceparent', `00-${'a'.repeat(32)}-${SPAN}-01`]],
  ])(
    'from a trusted proxy, a malformed traceparent (%s) is replaced, never forwarded, and its tracestate dropped',
    async (_label, headers) => {
      const got = await forwarded(behindProxy, [...headers, 'tracestate', STATE]);
      expect(got.traceId).not.toBe(TRACE);
      expect(got.traceId).not.toBe('a'.repeat(32));
      expect(got.tracestate).toBeUndefined();
    },
  );

  it('without one: each request starts its own trace, named in its access line', async () => {
    const a = await forwarded(direct, []);
    const b = await forwarded(direct, []);
    expect(a.traceId).not.toBe(b.traceId);
    expect(a.flags).toBe('00');
    expect(accessLine(direct, b.reqId)?.['trace']).toBe(b.traceId);
  });

  it('a WebSocket handshake carries the same rule', async () => {
    const before = wsBackend.upgrades.length;
    const out = await openWs(`${direct.url.replace('http:', 'ws:')}/api/ws/room`, { headers: { traceparent: CLIENT, tracestate: STATE } });
    if (!out.ok) throw new Error(`upgrade refused: ${out.status}`);
    out.ws.close();
    const up = wsBackend.upgrades[before];
    const tp = up?.headers.get('traceparent') ?? [];
    expect(tp).toHaveLength(1);
    expect(tp[0]).toMatch(TRACEPARENT);
    expect(tp[0]?.slice(3, 35)).not.toBe(TRACE);
    expect(up?.headers.get('tracestate')).toBeUndefined();
  });
});
