import { isIP } from 'node:net';
import { AgentError } from '../errors/index.js';

/**
 * Prefixes as the kernel and WireGuard print them, so desired and current compare as strings:
 * host bits cleared, a bare address becomes a host prefix (/32, /128), IPv6 in its shortest form.
 */
export function canonicalPrefix(text: string): string {
  const [addr = '', len] = text.split('/');
  const family = isIP(addr);
  if (family === 0) throw badPrefix(text);
  const max = family === 4 ? 32 : 128;
  const bits = len === undefined ? max : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (len !== undefined && !/^\d{1,3}$/.test(len))) {
    throw badPrefix(text);
  }
  const bytes = family === 4 ? v4Bytes(addr) : v6Bytes(addr);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return `${family === 4 ? bytes.join('.') : v6Text(bytes)}/${bits}`;
}

/** An address with its prefix length (`10.0.0.1/24`), as `ip addr` takes it; a bare address gets /32 or /128. */
export function canonicalAddress(text: string): string {
  const [addr = '', len] = text.split('/');
  const family = isIP(addr);
  if (family === 0) throw badPrefix(text);
  const max = family === 4 ? 32 : 128;
  const bits = len === undefined ? max : Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw badPrefix(text);
  const a = family === 4 ? addr : v6Text(v6Bytes(addr));
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

function v4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

function v6Bytes(a: string): number[] {
  let text = a.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1] !== undefined) {
    const b = v4Bytes(v4[1]);
    text = text.replace(
      v4[1],
      `${(((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16)}:${(((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16)}`,
    );
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [(n >> 8) & 0xff, n & 0xff];
  });
}

function v6Text(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: the longest run (≥ 2) of zero groups becomes '::'.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function badPrefix(text: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `${JSON.stringify(text.slice(0, 64))} is not an IP prefix`, {
    hint: 'write prefixes as address/length, e.g. 169.254.0.2/32 or fd00::/64',
  });
}
