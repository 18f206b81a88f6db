import { isIP } from 'node:net';
import { AgentError } from '../errors/index.js';

/**
 * IP addresses as integers: a /16 or a /64 is walked by adding to a bigint, which is simpler and
 * exact for both families, and text is always written the same way (IPv6 per RFC 5952). The
 * service IPAM walks ranges with it; the forwarder canonicalises what it compares with the kernel.
 */
export type IpFamily = 4 | 6;

export interface IpPrefix {
  readonly family: IpFamily;
  /** The network address (host bits cleared). */
  readonly network: bigint;
  readonly bits: number;
  /** `network/bits` in canonical text (IPv6 per RFC 5952). */
  readonly text: string;
}

export function familyWidth(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** Parses a bare address (`10.0.0.1`, `fd00::1`); undefined when it is not one. */
export function parseIp(text: string): { family: IpFamily; value: bigint } | undefined {
  const family = isIP(text);
  if (family === 4) return { family, value: v4Value(text) };
  if (family === 6) return { family, value: v6Value(text) };
  return undefined;
}

/** Parses `addr/len`; host bits are cleared, and `hostBitsSet` tells whether the text had any. */
export function parsePrefix(text: string): (IpPrefix & { readonly hostBitsSet: boolean }) | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m?.[1] || m[2] === undefined) return undefined;
  const ip = parseIp(m[1]);
  const bits = Number(m[2]);
  if (!ip || bits > familyWidth(ip.family)) return undefined;
  const network = ip.value & prefixMask(ip.family, bits);
  return {
    family: ip.family,
    network,
    bits,
    text: `${formatIp(ip.family, network)}/${bits}`,
    hostBitsSet: network !== ip.value,
  };
}

/** Parses an IPv4 or IPv6 CIDR or throws INVALID_ARGUMENT naming what is wrong. */
export function requirePrefix(text: string, what: string): IpPrefix {
  const p = parsePrefix(text);
  if (!p) {
    throw new AgentError('INVALID_ARGUMENT', `${what} ${JSON.stringify(text)} is not an IPv4 or IPv6 CIDR`, {
      hint: 'write it as address/length, e.g. 169.254.0.0/16 or fd00:6e73:6d::/64',
    });
  }
  return { family: p.family, network: p.network, bits: p.bits, text: p.text };
}

export function prefixSize(p: IpPrefix): bigint {
  return 1n << BigInt(familyWidth(p.family) - p.bits);
}

export function prefixContains(p: IpPrefix, family: IpFamily, value: bigint): boolean {
  return family === p.family && (value & prefixMask(family, p.bits)) === p.network;
}

/** The mask of a /bits prefix of `family`. */
export function prefixMask(family: IpFamily, bits: number): bigint {
  const width = familyWidth(family);
  const all = (1n << BigInt(width)) - 1n;
  return all ^ ((1n << BigInt(width - bits)) - 1n);
}

export function formatIp(family: IpFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: the first longest run (at least 2) of zero groups becomes '::'.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** `addr/32` or `addr/128`. */
export function hostPrefixText(family: IpFamily, value: bigint): string {
  return `${formatIp(family, value)}/${familyWidth(family)}`;
}

function v4Value(text: string): bigint {
  return text.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function v6Value(text: string): bigint {
  let t = text.toLowerCase();
  // Zone ids (fe80::1%eth0) carry no address bits.
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4?.[1] !== undefined) {
    const n = v4Value(v4[1]);
    t = `${t.slice(0, t.length - v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = t.split('::');
  const h = head === '' ? [] : head.split(':');
  const rest = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - rest.length).fill('0'), ...rest];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}
