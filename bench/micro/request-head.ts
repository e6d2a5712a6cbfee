/**
 * What the upstream writer's checks cost: serializeRequestHead (every byte of the head checked, issue 10)
 * against the plain concatenation of the same head that the client did before, for a request carrying the
 * headers Gatehouse usually adds upstream. Medians of alternating rounds; evidence for docs/performance.md.
 * Run with `node bench/micro/request-head.ts`.
 */
import { NO_BODY, serializeRequestHead } from '../../src/proxy/upstream/request-head.ts';

const N = Number(process.env['CALLS'] ?? 500_000);
const ROUNDS = 7;
const token = `eyJhbGciOiJSUzI1NiJ9.${'e'.repeat(480)}.${'s'.repeat(80)}`;
const headers = [
  'user-agent',
  'wrk',
  'accept',
  '*/*',
  'x-forwarded-for',
  '127.0.0.1',
  'x-forwarded-proto',
  'http',
  'x-forwarded-host',
  '127.0.0.1:8080',
  'x-request-id',
  '6f1c2a4e-1b2c-4d5e-8f90-123456789abc',
  'authorization',
  `Bearer ${token}`,
  'x-user-sub',
  'alice',
  'x-user-email',
  'alice@example.test',
  'x-user-name',
  'Alice',
];

function plain(method: string, target: string, host: string, list: readonly string[]): string {
  let head = `${method} ${target} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (let i = 0; i < list.length; i += 2) head += `${list[i] as string}: ${list[i + 1] as string}\r\n`;
  return `${head}\r\n`;
}

const variants: Record<string, () => number> = {
  checked: () => serializeRequestHead('GET', '/hello?x=1', '127.0.0.1:4000', headers, NO_BODY).length,
  plain: () => plain('GET', '/hello?x=1', '127.0.0.1:4000', headers).length,
};
const times: Record<string, number[]> = { checked: [], plain: [] };
let sink = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of Object.entries(variants)) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += run();
    (times[name] as number[]).push(Number(process.hrtime.bigint() - started) / N);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
for (const [name, xs] of Object.entries(times))
  process.stdout.write(`${name.padEnd(8)} ${median(xs).toFixed(0)} ns per head (rounds ${xs.map((x) => x.toFixed(0)).join(', ')})\n`);
process.stdout.write(
  `checks: ${(median(times['checked'] as number[]) - median(times['plain'] as number[])).toFixed(0)} ns per request${sink < 0 ? '!' : ''}\n`,
);
