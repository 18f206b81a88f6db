import { isIP } from 'node:net';
import type { Connection } from '../../../api/index.js';
import { MechanismType, Payload } from '../../../api/index.js';
import type { ForwarderEntries } from '../entries.js';

export interface WireguardOptions {
  readonly forwarder: ForwarderEntries;
  /** This host's tunnel address (underlay IP the peer sends to). */
  readonly tunnelIp: string;
  /** The device's public key and UDP port, as in the forwarder's desired device. */
  readonly publicKey: string;
  readonly listenPort: number;
  /** The device MTU offered to (or answered to) the peer. */
  readonly mtu?: number;
  /** For peers behind NAT; 0 or absent: off. */
  readonly persistentKeepalive?: number;
}

/** WireGuard carries IP only (nsm-api.md §3.1); an unset payload is IP, as upstream defaults it. */
export function carriesIp(conn: Connection | undefined): boolean {
  return conn === undefined || conn.payload === '' || conn.payload === Payload.IP;
}

export const wireguardType = MechanismType.WIREGUARD;

/** `ip:port`, with brackets for IPv6. */
export function endpointOf(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
