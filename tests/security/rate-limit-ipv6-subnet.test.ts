import { describe, expect, it } from 'vitest';
import { clientKey } from '../../src/policy/rate-limit.ts';
import { send } from '../helpers/backends.ts';
import { expectError } from '../helpers/expect-error.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * Security case 122 (RL-IPV6): an IPv6 host usually holds a whole /64 and can take any address in it, so anonymous
 * callers are counted per /64, however the address is spelled. The addresses arrive through a trusted proxy
 * (TRUST_PROXY=127.0.0.1), the only way a client address other than the peer's is believed.
 */
describe('IPv6 clients are counted per /64', () => {
  it('gives every address of one /64 one key, whatever its spelling, and another /64 another', () => {
    const key = clientKey('2001:db8:1:2::1');
    for (const same of [
      '2001:db8:1:2::ffff',
      '2001:0DB8:0001:0002:abcd:0:0:1',
      '2001:db8:1:2:1:2:3:4',
      '2001:db8:1:2::192.0.2.1',
      '2001:db8:1:2::1%eth0',
    ])
      expect(clientKey(same), same).toBe(key);
    expect(clientKey('2001:db8:1:3::1')).not.toBe(key);
    expect(clientKey('::1')).toBe(clientKey('::2'));
    expect(clientKey('192.0.2.1')).not.toBe(clientKey('192.0.2.2'));
  });

  const proxy = useBareProxy({
    config: 'rateLimits:\n  api: { requests: 5, windowSeconds: 60 }\n',
    env: { TRUST_PROXY: '127.0.0.1' },
  });
  const from = (ip: string) => send(proxy.url, { path: '/api/v6', headers: ['X-Forwarded-For', ip] });

  it('refuses the sixth request from a /64 although each came from a different address in it', async () => {
    for (let i = 1; i <= 5; i++) expect((await from(`2001:db8:aa:bb::${i.toString(16)}`)).status).toBe(200);
    expectError(await from('2001:db8:aa:bb:dead:beef:0:6'), 429, 'too_many_requests');
    // The neighbouring /64 is another client, and so is each IPv4 address.
    expect((await from('2001:db8:aa:bc::1')).status).toBe(200);
    expect((await from('192.0.2.10')).status).toBe(200);
  });
});
