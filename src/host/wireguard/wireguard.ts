import { AgentError } from '../../errors/index.js';
import type { WireGuardKey } from './keys.js';

/**
 * The WireGuard port: one device per agent, declared and re-declared idempotently. Backends: kernel
 * (`ip link … type wireguard` + `wg`), userspace (wireguard-go over UAPI), and the in-memory fake
 * (src/host/fake/memory-wireguard.ts). Packets never pass through the agent.
 */
export type WireGuardBackendKind = 'kernel' | 'userspace' | 'memory';

export interface DeviceConfig {
  /** base64; reaches the backend through a root-only temp file (wg) or the UAPI socket, never argv or logs. */
  readonly privateKey: WireGuardKey;
  readonly listenPort: number;
  /** Interface MTU; default 1420 (1500 underlay minus 80 bytes of WireGuard over IPv6). */
  readonly mtu?: number;
}

export interface PeerConfig {
  readonly publicKey: WireGuardKey;
  /**
   * `ip:port` or `[ipv6]:port`. Absent: whatever the device has is kept (WireGuard cannot unset an
   * endpoint, and learns a roaming peer's from its packets); for a peer that only ever dials us.
   */
  readonly endpoint?: string;
  /** The peer's allowed IPs are set to exactly this list (CIDRs). */
  readonly allowedIps: readonly string[];
  /** Seconds; 0 or absent: off (WireGuard is silent when idle unless NAT needs keepalives). */
  readonly persistentKeepalive?: number;
}

export interface ConfigureOptions {
  /** Peers to add or update; each one's allowed IPs are replaced by the given list. */
  readonly peers: readonly PeerConfig[];
  /** Remove every peer not in `peers` (a full declaration). */
  readonly replacePeers?: boolean;
  /** Public keys of peers to remove. */
  readonly removePeers?: readonly WireGuardKey[];
}

export interface PeerState {
  readonly publicKey: WireGuardKey;
  readonly endpoint?: string;
  readonly allowedIps: readonly string[];
  /** Epoch milliseconds of the last completed handshake; 0: never. */
  readonly lastHandshakeMs: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly persistentKeepalive: number;
}

export interface DeviceState {
  readonly name: string;
  /** The device's public key; the private key is never read back into the agent's state. */
  readonly publicKey?: WireGuardKey;
  readonly listenPort: number;
  readonly peers: readonly PeerState[];
}

export interface WireGuard {
  readonly backend: WireGuardBackendKind;
  /** Creates the device or brings an existing one to this key, port and MTU, and sets it up. */
  ensureDevice(name: string, config: DeviceConfig): Promise<void>;
  /** Applies peer changes; the device must exist. */
  configure(name: string, options: ConfigureOptions): Promise<void>;
  /** The device and its peers, or undefined when there is no such device. */
  show(name: string): Promise<DeviceState | undefined>;
  /** Removes the device (and for userspace its process and socket); a missing device is fine. */
  deleteDevice(name: string): Promise<void>;
}

export const defaultWireGuardMtu = 1420;

/** Linux interface names: at most 15 bytes, no '/' or blanks. */
export function checkDeviceName(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
    throw new AgentError('INVALID_ARGUMENT', `invalid WireGuard device name ${JSON.stringify(name)}`, {
      hint: 'use 1 to 15 letters, digits, "_", "." or "-" (config wireguard.interface)',
    });
  }
  return name;
}
