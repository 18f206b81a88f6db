import { AgentError } from '../errors/index.js';
import { familyWidth, formatIp, parseIp, prefixMask } from '../util/ip-prefix.js';

/**
 * Prefixes as the kernel and WireGuard print them, so desired and current compare as strings:
 * host bits cleared, a bare address becomes a host prefix (/32, /128), IPv6 in its shortest form.
 */
export function canonicalPrefix(text: string): string {
  return remembered(prefixes, text, prefixOf);
}

/** An address with its prefix length (`10.0.0.1/24`), as `ip addr` takes it; a bare address gets /32 or /128. */
export function canonicalAddress(text: string): string {
  return remembered(addresses, text, addressOfText);
}

/**
 * The canonical form of the texts seen lately: the same few hundred prefixes and addresses come
 * back from every host read and every plan (parsing one is a few bigint operations, the bulk of a
 * plan's time before). Bounded: emptied when full, so a long run's churn of connections cannot grow it.
 */
const prefixes = new Map<string, string>();
const addresses = new Map<string, string>();
const rememberedMax = 8192;

function remembered(cache: Map<string, string>, text: string, derive: (text: string) => string): string {
  const known = cache.get(text);
  if (known !== undefined) return known;
  const value = derive(text);
  if (cache.size >= rememberedMax) cache.clear();
  cache.set(text, value);
  return value;
}

function prefixOf(text: string): string {
  const [addr = '', len] = text.split('/');
  const ip = parseIp(addr);
  if (ip === undefined) throw badPrefix(text);
  const max = familyWidth(ip.family);
  const bits = len === undefined ? max : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (len !== undefined && !/^\d{1,3}$/.test(len))) {
    throw badPrefix(text);
  }
  return `${formatIp(ip.family, ip.value & prefixMask(ip.family, bits))}/${bits}`;
}

function addressOfText(text: string): string {
  const [addr = '', len] = text.split('/');
  const ip = parseIp(addr);
  if (ip === undefined) throw badPrefix(text);
  const max = familyWidth(ip.family);
  const bits = len === undefined ? max : Number(len);
  // Number('') is 0: '10.0.0.1/' must not become a /0.
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (len !== undefined && !/^\d{1,3}$/.test(len))) {
    throw badPrefix(text);
  }
  const a = ip.family === 4 ? addr : formatIp(6, ip.value);
  return `${a}/${bits}`;
}

/** The host prefix of an address (`10.0.0.1/24` → `10.0.0.1/32`). */
export function hostPrefix(address: string): string {
  const [addr = ''] = address.split('/');
  return canonicalPrefix(addr);
}

/** The address part of a prefix or address. */
export function addressOf(prefix: string): string {
  return prefix.split('/')[0] ?? prefix;
}

export function isHostPrefix(prefix: string): boolean {
  return prefix.endsWith('/32') || prefix.endsWith('/128');
}

function badPrefix(text: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `${JSON.stringify(text.slice(0, 64))} is not an IP prefix`, {
    hint: 'write prefixes as address/length, e.g. 169.254.0.2/32 or fd00::/64',
  });
}
