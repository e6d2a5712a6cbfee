import { BlockList, isIP } from 'node:net';
import type { TrustProxy } from '../config/types.ts';

export interface ClientFacts {
  /** The client address: the peer, or the right-most untrusted X-Forwarded-For entry. */
  readonly ip: string;
  readonly proto: 'http' | 'https';
  /** X-Forwarded-Host from a trusted proxy, else undefined (the Host header stands). */
  readonly forwardedHost?: string;
  /** X-Forwarded-For to send on: the trusted chain plus the peer, never a client's forgery. */
  readonly forwardedFor: string;
}

export type TrustEvaluator = (
  peer: string,
  xff: string | undefined,
  xfProto: string | undefined,
  xfHost: string | undefined,
  encrypted: boolean,
) => ClientFacts;

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** Whether the peer at `hop` (0 = the direct peer) may set forwarding headers. Also Express's `trust proxy` function. */
export function trustPredicate(trust: TrustProxy): (ip: string, hop: number) => boolean {
  if (trust.kind === 'none') return () => false;
  if (trust.kind === 'hops') return (_ip, hop) => hop < trust.hops;
  const list = new BlockList();
  for (const entry of trust.list) {
    const [addr = '', bits] = entry.split('/');
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits !== undefined) list.addSubnet(addr, Number(bits), family);
    else list.addAddress(addr, family);
  }
  return (ipRaw) => {
    const ip = stripMapped(ipRaw);
    const family = isIP(ip);
    return family !== 0 && list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * Compiles TRUST_PROXY once. Forwarded headers are believed only from configured peers (hop count or
 * addresses); from anyone else they are replaced, so no decision uses a client's X-Forwarded-* (RFC 9700 §4.13).
 */
export function compileTrust(trust: TrustProxy): TrustEvaluator {
  const isTrusted = trustPredicate(trust);

  return (peerRaw, xff, xfProto, xfHost, encrypted) => {
    const peer = stripMapped(peerRaw);
    const ownProto = encrypted ? 'https' : 'http';
    if (!isTrusted(peer, 0)) return { ip: peer, proto: ownProto, forwardedFor: peer };
    const chain = (xff ?? '')
      .split(',')
      .map((s) => stripMapped(s.trim()))
      .filter((s) => isIP(s) !== 0);
    let ip = peer;
    let hop = 1;
    for (let i = chain.length - 1; i >= 0; i--) {
      ip = chain[i] as string;
      if (!isTrusted(ip, hop)) break;
      hop++;
    }
    const proto = xfProto?.split(',')[0]?.trim().toLowerCase();
    const host = xfHost?.split(',')[0]?.trim();
    return {
      ip,
      proto: proto === 'https' || proto === 'http' ? proto : ownProto,
      ...(host && /^[A-Za-z0-9.:[\]-]{1,255}$/.test(host) ? { forwardedHost: host } : {}),
      forwardedFor: [...chain, peer].join(', '),
    };
  };
}
