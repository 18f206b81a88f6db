import { AgentError } from '../errors/index.js';
import type { NetnsRef } from '../host/index.js';
import type { WireGuardKey } from '../host/wireguard/index.js';
import { checkDeviceName } from '../host/wireguard/index.js';

/**
 * The whole data plane the forwarder should make, as data (DESIGN.md §4). The forwarder is given
 * all of it at once; it diffs against the host and changes only what differs.
 *
 * Entries are keyed `<connection id>/<part>`: each chain element that needs something on the host
 * (the WireGuard mechanism its tunnel, the KERNEL mechanism its local side) owns its own entry and
 * can add or remove exactly that.
 */
export interface DesiredState {
  /** The agent's one WireGuard device; absent: no device (and any the forwarder made is removed). */
  readonly device?: DeviceSpec;
  readonly entries: Readonly<Record<string, DesiredEntry>>;
}

export interface DeviceSpec {
  /** Interface name (config `wireguard.interface`, default `nsm-wg0`); unique on the machine. */
  readonly name: string;
  /** Never logged, never in argv, never written to the state record. */
  readonly privateKey: WireGuardKey;
  readonly listenPort: number;
  readonly mtu: number;
}

export type DesiredEntry = TunnelEntry | HostLocalEntry | NetnsLocalEntry;

/** A connection's use of a WireGuard peer: the peer's allowed IPs are the union over its entries. */
export interface TunnelEntry {
  readonly kind: 'tunnel';
  readonly peerPublicKey: WireGuardKey;
  /** `ip:port`; absent for a peer that only dials us (its endpoint is learnt from its packets). */
  readonly endpoint?: string;
  readonly persistentKeepalive?: number;
  /** What lies behind the peer for this connection: allowed IPs, routed into the device. */
  readonly remotePrefixes: readonly string[];
}

/** The local side for a process in the host's own netns: its addresses live on the WireGuard device. */
export interface HostLocalEntry {
  readonly kind: 'host';
  /** Addresses with prefix length (`169.254.0.1/32`). */
  readonly addresses: readonly string[];
}

/**
 * The local side for a workload in its own netns: a veth pair, the host end `<prefix><8 hex>`, the
 * other end named `ifName` inside `netns` with the addresses; inside, `routes` lead to the host end.
 */
export interface NetnsLocalEntry {
  readonly kind: 'netns';
  readonly netns: NetnsRef;
  /** 1–15 characters (the KERNEL mechanism's `name`). */
  readonly ifName: string;
  readonly addresses: readonly string[];
  /** Prefixes the workload reaches through the host (the far side of the connection). */
  readonly routes: readonly string[];
}

export const emptyDesiredState: DesiredState = { entries: {} };

/** WireGuard over IPv6 adds 80 bytes (40 IPv6 + 8 UDP + 32 WireGuard): 1500 → 1420. */
export const wireguardOverhead = 80;

/** The device MTU for an underlay MTU, safe whether the tunnel runs over IPv4 or IPv6. */
export function wireguardMtu(underlayMtu: number): number {
  if (!Number.isInteger(underlayMtu) || underlayMtu < 1280 + wireguardOverhead) {
    throw new AgentError('CONFIG_INVALID', `underlay MTU ${underlayMtu} leaves no room for WireGuard`, {
      hint: `the underlay needs an MTU of at least ${1280 + wireguardOverhead}; or give the device MTU explicitly`,
    });
  }
  return underlayMtu - wireguardOverhead;
}

/** The entry key of one element's part of one connection. */
export function entryKey(connectionId: string, part: string): string {
  return `${connectionId}/${part}`;
}

/** The state with one entry set (or removed when `entry` is undefined); the input is not changed. */
export function withEntry(state: DesiredState, key: string, entry: DesiredEntry | undefined): DesiredState {
  const entries = Object.fromEntries(Object.entries(state.entries).filter(([k]) => k !== key));
  if (entry !== undefined) entries[key] = entry;
  return { ...(state.device === undefined ? {} : { device: state.device }), entries };
}

/** Checks what cannot be checked later without touching the host; throws INVALID_ARGUMENT. */
export function checkDesiredState(state: DesiredState): DesiredState {
  if (state.device !== undefined) {
    checkDeviceName(state.device.name);
    if (!Number.isInteger(state.device.mtu) || state.device.mtu < 1280 || state.device.mtu > 65535) {
      throw new AgentError('INVALID_ARGUMENT', `WireGuard MTU ${state.device.mtu} is not 1280..65535`, {
        hint: 'derive it from the underlay with wireguardMtu() or set wireguard.mtu',
      });
    }
  }
  const ifNames = new Map<string, string>();
  for (const [key, e] of Object.entries(state.entries)) {
    checkEntry(state, key, e);
    if (e.kind === 'netns') {
      const slot = interfaceSlot(e);
      const other = ifNames.get(slot);
      if (other !== undefined) throw interfaceTaken(other, key, e.ifName);
      ifNames.set(slot, key);
    }
  }
  return state;
}

/**
 * checkDesiredState for a state whose other entries were checked with it before (the last applied
 * state with the entries under `changed` set or removed): only the changed entries are looked at.
 * `holders(slot)`: the keys of the entries that wanted the interface slot (interfaceSlot) before.
 */
export function checkChangedEntries(
  state: DesiredState,
  changed: readonly string[],
  holders: (slot: string) => Iterable<string>,
): void {
  const changedKeys = new Set(changed);
  const slots = new Map<string, string>();
  for (const key of changed) {
    const e = Object.hasOwn(state.entries, key) ? state.entries[key] : undefined;
    if (e === undefined) continue;
    checkEntry(state, key, e);
    if (e.kind !== 'netns') continue;
    const slot = interfaceSlot(e);
    let other = slots.get(slot);
    if (other === undefined)
      for (const k of holders(slot))
        if (!changedKeys.has(k)) {
          other = k;
          break;
        }
    if (other !== undefined) throw interfaceTaken(other, key, e.ifName);
    slots.set(slot, key);
  }
}

/** Where a netns entry's interface lives: two entries may not want the same one. */
export function interfaceSlot(e: NetnsLocalEntry): string {
  return `${netnsKey(e.netns)}#${e.ifName}`;
}

/** The checks of one entry on its own. */
function checkEntry(state: DesiredState, key: string, e: DesiredEntry): void {
  if (e.kind === 'tunnel' && state.device === undefined) {
    throw new AgentError('INVALID_ARGUMENT', `entry ${key} needs a WireGuard peer but there is no device`, {
      hint: 'declare the device in the desired state before tunnels',
    });
  }
  if (e.kind === 'netns') {
    if (e.netns.kind === 'path') {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `entry ${key}: netns ${e.netns.path} cannot be entered by name or pid`,
        {
          hint: 'give the workload netns as /var/run/netns/<name> or /proc/<pid>/ns/net',
        },
      );
    }
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(e.ifName)) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `entry ${key}: interface name ${JSON.stringify(e.ifName)} is not valid`,
        {
          hint: 'use 1 to 15 letters, digits, "_", "." or "-" (KERNEL mechanism parameter name)',
        },
      );
    }
  }
}

function interfaceTaken(other: string, key: string, ifName: string): AgentError {
  return new AgentError(
    'ALREADY_EXISTS',
    `entries ${other} and ${key} both want ${ifName} in the same netns`,
    {
      hint: 'give each connection its own interface name in the KERNEL mechanism',
    },
  );
}

/** A stable text key for a netns reference (its path). */
export function netnsKey(ref: NetnsRef): string {
  switch (ref.kind) {
    case 'named':
      return `/var/run/netns/${ref.name}`;
    case 'pid':
      return `/proc/${ref.pid}/ns/net`;
    case 'path':
      return ref.path;
  }
}
