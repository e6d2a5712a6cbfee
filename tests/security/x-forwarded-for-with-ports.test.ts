import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { send } from '../helpers/backends.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

const ADMIN_TOKEN = 'adm1n-t0ken-0123456789abcdefghijklmnopqrstuv';
const randomIp = () => `${randomInt(1, 224)}.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

/**
 * Behind a trusted proxy that writes the client's address with a port (Azure Application Gateway:
 * `198.51.100.7:51234`; RFC 7239 style `[2001:db8::7]:443`), that entry is the client. It used to be dropped as no
 * address, and the walk went on to whatever the client had written further left: a forged X-Forwarded-For then
 * chose the rate-limit bucket (and the address in the logs) on every request. An entry that is no address at all
 * (`unknown`) now ends the walk at the proxy instead.
 */
describe('X-Forwarded-For entries with ports, from a trusted proxy', () => {
  // The test client connects from 127.0.0.1, which TRUST_PROXY names: it plays the proxy.
  const proxy = useBareProxy({
    env: { TRUST_PROXY: '127.0.0.1', ADMIN_TOKEN },
    config: 'rateLimits:\n  api: { requests: 3, windowSeconds: 60 }\n  auth: { requests: 3, windowSeconds: 60 }\n',
  });

  it.each([
    ['an IPv4 address with a port', '198.51.100.7:51234', '198.51.100.7'],
    ['a bracketed IPv6 address with a port', '[2001:db8::7]:443', '2001:db8::7'],
    ['a bracketed IPv6 address (another /64: IPv6 is counted per /64)', '[2001:db8:1::8]', '2001:db8:1::8'],
    ['no address at all', 'unknown', '127.0.0.1'],
  ])('%s names the client: forged entries to its left buy no fresh bucket', async (_name, written, client) => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      // A different client each time would be a different bucket; one per written entry is what must hold.
      const res = await send(proxy.url, { path: `/api/${client}`, headers: ['X-Forwarded-For', `${randomIp()}, ${written}`] });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
    const forwarded = proxy.backend.last().headers.get('x-forwarded-for')?.[0] ?? '';
    if (client !== '127.0.0.1') expect(forwarded.endsWith(`, ${client}, 127.0.0.1`)).toBe(true);
  });

  it('outside /api, the address recorded (the admin audit line, a session at login) is the same client', async () => {
    const res = await send(proxy.url, {
      method: 'POST',
      path: '/admin/users/nobody/revoke',
      headers: ['X-Admin-Token', ADMIN_TOKEN, 'X-Forwarded-For', `${randomIp()}, 198.51.100.7:51234`],
    });
    expect(res.status).toBe(200);
    const audit = proxy.gh.logs.filter((l) => l['msg'] === 'admin audit').at(-1);
    expect(audit?.['ip']).toBe('198.51.100.7');
  });

  it('the same holds on /auth, counted per client IP', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await send(proxy.url, { path: '/auth/me', headers: ['X-Forwarded-For', `${randomIp()}, 198.51.100.9:40000`] });
      statuses.push(res.status);
    }
    // /auth/me without a session is a 401 once admitted: what matters is where the 429s start.
    expect(statuses.map((s) => s === 429)).toEqual([false, false, false, true, true, true]);
  });
});
