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

/**
 * An X-Forwarded-For entry as an address: a bare IP, or as proxies also write them, an IPv4 address with a port
 * (`198.51.100.7:51234`: Azure Application Gateway) or a bracketed IPv6 address with or without one (RFC 7239's
 * node syntax). Undefined for anything else (`unknown`, an obfuscated identifier, garbage).
 */
function forwardedAddress(entry: string): string | undefined {
  const s = entry.trim();
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    const rest = s.slice(end + 1);
    if (end === -1 || (rest !== '' && !/^:\d{1,5}$/.test(rest))) return undefined;
    const ip = s.slice(1, end);
    return isIP(ip) === 6 ? stripMapped(ip) : undefined;
  }
  const colon = s.indexOf(':');
  if (colon !== -1 && colon === s.lastIndexOf(':')) {
    const ip = s.slice(0, colon);
    return /^\d{1,5}$/.test(s.slice(colon + 1)) && isIP(ip) === 4 ? ip : undefined;
  }
  const ip = stripMapped(s);
  return isIP(ip) !== 0 ? ip : undefined;
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
    const entries = xff === undefined || xff === '' ? [] : xff.split(',').map(forwardedAddress);
    // Walked from the right: the client is the first address no trusted proxy vouches for. An entry that is no
    // address ends the walk where it stands (the last trusted hop is then the client): skipping it would hand
    // the choice to whatever the client wrote further left.
    let ip = peer;
    let hop = 1;
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i];
      if (entry === undefined) break;
      ip = entry;
      if (!isTrusted(ip, hop)) break;
      hop++;
    }
    const chain = entries.filter((e): e is string => e !== undefined);
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
