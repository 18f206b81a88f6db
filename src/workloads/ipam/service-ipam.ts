import { createHash } from 'node:crypto';
import { AgentError } from '../../errors/index.js';
import type { IpFamily, IpPrefix } from '../../util/ip-prefix.js';
import {
  formatIp,
  hostPrefixText,
  parseIp,
  prefixContains,
  prefixSize,
  requirePrefix,
} from '../../util/ip-prefix.js';

export interface ServiceIpamOptions {
  /** The exposed service's name. */
  readonly service: string;
  /** The range connections get their client addresses from, e.g. 169.254.0.0/16. */
  readonly cidr: string;
}

/**
 * Addresses for one exposed service (DESIGN.md §4 "Addresses"), on the exposing agent:
 *
 *  - one **service address**, derived only from (service, cidr), so every host that exposes `web`
 *    with the same range answers at the same address and consumers can keep using it after their
 *    connection moves to another exposing host;
 *  - one **client address** per connection. A requested address (the one a refresh carries) is
 *    honoured when it is free, as NSM's IPAM does; otherwise the address is derived from the
 *    connection key, so an agent restarted without memory hands a returning client the address it
 *    had before. Collisions probe forward to the next free address.
 *
 * The usable range skips the network and (IPv4) broadcast address, except in /31 and /127 where
 * both addresses are usable.
 */
export class ServiceIpam {
  readonly service: string;
  /** The range in canonical form. */
  readonly cidr: string;
  readonly family: IpFamily;
  /** The stable service address as a host prefix (`169.254.17.3/32`), what ipContext carries. */
  readonly serviceAddress: string;
  /** The same address without prefix length, for hosts files and messages. */
  readonly serviceIp: string;

  readonly #prefix: IpPrefix;
  readonly #first: bigint;
  /** Number of usable addresses, the service address included. */
  readonly #count: bigint;
  readonly #service: bigint;
  readonly #byKey = new Map<string, bigint>();
  readonly #byAddress = new Map<bigint, string>();

  constructor(options: ServiceIpamOptions) {
    this.service = options.service;
    this.#prefix = requirePrefix(options.cidr, `the address range of service "${options.service}"`);
    this.cidr = this.#prefix.text;
    this.family = this.#prefix.family;
    const size = prefixSize(this.#prefix);
    // /31 and /127 are point-to-point ranges where both addresses are usable (RFC 3021, RFC 6164).
    const edges = size <= 2n ? 0n : this.family === 4 ? 2n : 1n;
    this.#first = this.#prefix.network + (size <= 2n ? 0n : 1n);
    this.#count = size - edges;
    if (this.#count < 2n) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `${this.cidr} is too small for service "${this.service}": it needs room for the service address and at least one client`,
        { hint: 'give a wider range, e.g. --cidr 169.254.0.0/16 (the default)' },
      );
    }
    this.#service = this.#first + hashMod(['service', this.service], this.#count);
    this.serviceIp = formatIp(this.family, this.#service);
    this.serviceAddress = hostPrefixText(this.family, this.#service);
  }

  /** How many client addresses the range holds (the service address excluded). */
  get capacity(): bigint {
    return this.#count - 1n;
  }

  /** How many client addresses are held. */
  get inUse(): number {
    return this.#byKey.size;
  }

  /** The client address held by `connectionKey` (host prefix), if any. */
  addressOf(connectionKey: string): string | undefined {
    const v = this.#byKey.get(connectionKey);
    return v === undefined ? undefined : hostPrefixText(this.family, v);
  }

  /** True when `address` (bare or with a prefix length) lies in this service's range. */
  contains(address: string): boolean {
    const ip = parseIp(address.split('/')[0] ?? '');
    return ip !== undefined && prefixContains(this.#prefix, ip.family, ip.value);
  }

  /**
   * The client address of a connection, as a host prefix. Takes the first of `requested` that is in
   * the range, is not the service address and is free (or already this key's); else the address the
   * key already holds; else the one derived from the key, probing forward past taken ones.
   * Throws RESOURCE_EXHAUSTED when every client address is held by other connections.
   */
  allocate(connectionKey: string, requested: readonly string[] = []): string {
    for (const r of requested) {
      const v = this.#acceptable(r, connectionKey);
      if (v !== undefined) return this.#assign(connectionKey, v);
    }
    const held = this.#byKey.get(connectionKey);
    if (held !== undefined) return hostPrefixText(this.family, held);
    if (BigInt(this.#byKey.size) >= this.capacity) {
      throw new AgentError(
        'RESOURCE_EXHAUSTED',
        `service "${this.service}" has no free client address: all ${this.capacity} addresses of ${this.cidr} are in use`,
        {
          hint: `widen the range: expose ${this.service} with a --cidr shorter than /${this.#prefix.bits} (the default is 169.254.0.0/16)`,
          details: { service: this.service, cidr: this.cidr, inUse: this.#byKey.size },
        },
      );
    }
    // There is a free address, and each step passes a held one or the service address: this ends
    // within inUse + 2 steps.
    const start = hashMod(['client', this.service, connectionKey], this.#count);
    for (let i = 0n; ; i++) {
      const v = this.#first + ((start + i) % this.#count);
      if (v !== this.#service && !this.#byAddress.has(v)) return this.#assign(connectionKey, v);
    }
  }

  /** Frees the key's address; false when it held none. */
  release(connectionKey: string): boolean {
    const v = this.#byKey.get(connectionKey);
    if (v === undefined) return false;
    this.#byKey.delete(connectionKey);
    this.#byAddress.delete(v);
    return true;
  }

  #acceptable(requested: string, connectionKey: string): bigint | undefined {
    const ip = parseIp(requested.split('/')[0] ?? '');
    if (!ip || !prefixContains(this.#prefix, ip.family, ip.value)) return undefined;
    const v = ip.value;
    if (v < this.#first || v >= this.#first + this.#count || v === this.#service) return undefined;
    const holder = this.#byAddress.get(v);
    return holder === undefined || holder === connectionKey ? v : undefined;
  }

  #assign(connectionKey: string, v: bigint): string {
    this.release(connectionKey);
    this.#byKey.set(connectionKey, v);
    this.#byAddress.set(v, connectionKey);
    return hostPrefixText(this.family, v);
  }
}

/** A hash of the parts, reduced into [0, n); parts are length-prefixed so no two lists hash alike by accident. */
function hashMod(parts: readonly string[], n: bigint): bigint {
  const h = createHash('sha256');
  h.update('nsm-agent/ipam/v1');
  for (const p of parts) h.update(`\u0000${p.length}:${p}`);
  return BigInt(`0x${h.digest('hex')}`) % n;
}
