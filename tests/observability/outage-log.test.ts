import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GatehouseError } from '../../src/errors.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createOutageLog } from '../../src/observability/outage-log.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination }) };
}

/** The outage log on a hand-driven clock: one line when an outage starts, one per interval, one when it ends. */
describe('createOutageLog', () => {
  const storeDown = () => new GatehouseError('session_store_unavailable', { cause: new Error('Connection is closed.') });

  it('logs the first failure with its cause, then one line per interval with the count since, then one recovery line', () => {
    const { lines, log } = capture();
    let t = 1_000_000;
    const outages = createOutageLog(log, { intervalMs: 10_000, now: () => t });

    expect(outages.failed(storeDown(), 'r1')).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'error',
      msg: 'dependency unavailable',
      dependency: 'redis',
      code: 'session_store_unavailable',
    });
    expect(lines[0]?.['reqId']).toBe('r1');
    expect(lines[0]?.['err']).toMatchObject({ message: 'Connection is closed.' });

    for (let i = 0; i < 500; i++) {
      t += 10;
      outages.failed(storeDown(), `r${i}`);
    }
    expect(lines, 'nothing more within the interval').toHaveLength(1);
    t = 1_000_000 + 10_000;
    outages.failed(storeDown(), 'late');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 'error',
      msg: 'dependency still unavailable',
      dependency: 'redis',
      affected: 501,
      totalAffected: 502,
      sinceMs: 10_000,
    });
    expect(lines[1]).not.toHaveProperty('err');

    t += 3_000;
    outages.failed(storeDown(), 'after');
    outages.succeeded('redis');
    outages.succeeded('redis');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ level: 'info', msg: 'dependency recovered', dependency: 'redis', affected: 503, outageMs: 13_000 });

    // A new outage starts over, with its cause again.
    outages.failed(storeDown(), 'again');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ msg: 'dependency unavailable', reqId: 'again' });
  });

  it('keeps each dependency apart, and leaves other errors (bugs, backends) to the caller', () => {
    const { lines, log } = capture();
    const outages = createOutageLog(log);
    outages.succeeded('idp');
    expect(lines, 'no outage, nothing to end').toHaveLength(0);
    expect(outages.failed(new GatehouseError('idp_unavailable'), 'a')).toBe(true);
    expect(outages.failed(new GatehouseError('idp_error', { cause: new Error('bad nonce') }), 'b')).toBe(true);
    expect(outages.failed(storeDown(), 'c')).toBe(true);
    expect(lines.map((l) => [l['msg'], l['dependency']])).toEqual([
      ['dependency unavailable', 'idp'],
      ['dependency unavailable', 'redis'],
    ]);
    for (const code of ['internal_error', 'bad_gateway', 'gateway_timeout', 'unauthorized'] as const)
      expect(outages.failed(new GatehouseError(code), 'x'), code).toBe(false);
    outages.succeeded('redis');
    expect(lines.at(-1)).toMatchObject({ msg: 'dependency recovered', dependency: 'redis', affected: 1 });
    expect(lines).toHaveLength(3);
  });

  it('refuses an interval that is not a positive number', () => {
    const { log } = capture();
    expect(() => createOutageLog(log, { intervalMs: 0 })).toThrow(/intervalMs/);
  });
});
