import { describe, expect, it } from 'vitest';
import { CONFIG_FILE as FILE, configProblems, loadTestConfig } from '../helpers/config-problems.ts';

const load = (lines: string, env: Record<string, string> = {}) =>
  loadTestConfig(`mappings:\n  - frontendHost: app.example.com\n    backend: http://orders:8080\n${lines}`, { env });

const problems = (lines: string, env: Record<string, string> = {}): readonly string[] => configProblems(() => load(lines, env));

describe('healthCheck, circuitBreaker, fallback, maxConcurrent, maxStreams and NOTIFY_WEBHOOK_*', () => {
  it('an empty healthCheck and circuitBreaker take every documented default', () => {
    const m = load('    healthCheck: {}\n    circuitBreaker: {}\n').routing.mappings[0];
    expect(m?.healthCheck).toEqual({
      path: '/',
      method: 'GET',
      intervalSeconds: 30,
      timeoutMs: 5000,
      healthyStatuses: ['2xx', '3xx'],
      unhealthyAfter: 2,
      healthyAfter: 2,
      notifyAfterSeconds: 60,
    });
    expect(m?.circuitBreaker).toEqual({ failures: 5, windowSeconds: 30, cooldownSeconds: 10 });
    expect(m?.maxConcurrent).toBeUndefined();
  });

  it('each wrong value is named by its field', () => {
    const list = problems(
      '    healthCheck: { intervalSeconds: 0, healthyStatuses: ["2xy"], method: POST }\n' +
        '    circuitBreaker: { failures: 0 }\n    fallback: "orders:9090"\n    maxConcurrent: 0\n    maxStreams: -1\n',
    );
    for (const field of [
      '/mappings/0/healthCheck/intervalSeconds',
      '/mappings/0/healthCheck/healthyStatuses/0',
      '/mappings/0/healthCheck/method',
      '/mappings/0/circuitBreaker/failures',
      '/mappings/0/fallback',
      '/mappings/0/maxConcurrent',
      '/mappings/0/maxStreams',
    ]) {
      expect(
        list.some((p) => p.includes(`${FILE} ${field}:`)),
        `${field} in ${list.join('\n')}`,
      ).toBe(true);
    }
  });

  it('NOTIFY_WEBHOOK_URL must be an http(s) URL and the secret at least 16 characters, never quoted back', () => {
    const list = problems('', { NOTIFY_WEBHOOK_URL: 'hooks.example.com/x', NOTIFY_WEBHOOK_SECRET: 'short-secret' });
    expect(list.some((p) => p.startsWith('env NOTIFY_WEBHOOK_URL:'))).toBe(true);
    const secretLine = list.find((p) => p.startsWith('env NOTIFY_WEBHOOK_SECRET:'));
    expect(secretLine).toBeDefined();
    expect(secretLine).not.toContain('short-secret');
    expect(load('', { NOTIFY_WEBHOOK_URL: 'https://hooks.example.com/gatehouse', NOTIFY_WEBHOOK_SECRET: 'x'.repeat(32) }).notify).toEqual({
      url: 'https://hooks.example.com/gatehouse',
      secret: 'x'.repeat(32),
    });
  });
});
