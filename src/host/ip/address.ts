import { num, obj, parseIpJson, requireStr, str } from './ip-json.js';
import type { IpJsonObject } from './ip-json.js';

/** One address on one interface, from `ip -json addr show`. */
export interface Address {
  readonly dev: string;
  readonly family: 'inet' | 'inet6';
  /** Address with prefix length, e.g. `10.0.0.1/24` — the form `ip addr add` takes. */
  readonly cidr: string;
  readonly scope: string;
  /** IPv6 duplicate address detection still running: the address cannot be used as a source yet. */
  readonly tentative: boolean;
}

/** Parses `ip -json addr show` output: one entry per address, flattened over interfaces. */
export function parseAddresses(stdout: string): Address[] {
  return parseIpJson(stdout, 'addr show').flatMap((link) => {
    const dev = requireStr(link, 'ifname', 'addr');
    const infos = link['addr_info'];
    if (!Array.isArray(infos)) return [];
    return infos.flatMap((raw: unknown): Address[] => {
      const a = obj({ a: raw }, 'a');
      if (a === undefined) return [];
      return toAddress(dev, a);
    });
  });
}

function toAddress(dev: string, a: IpJsonObject): Address[] {
  const family = str(a, 'family');
  const local = str(a, 'local');
  const prefix = num(a, 'prefixlen');
  if ((family !== 'inet' && family !== 'inet6') || local === undefined || prefix === undefined) return [];
  return [
    {
      dev,
      family,
      cidr: `${local}/${prefix}`,
      scope: str(a, 'scope') ?? 'global',
      tentative: a['tentative'] === true,
    },
  ];
}
