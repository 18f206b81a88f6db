// The forwarder entries of one agent connection, for tests and benches that build many of them.
import type { DesiredEntry } from '../../src/forwarder/index.js';

export interface ConnectionEntriesOptions {
  /** The far end (service address) the tunnel carries. */
  readonly far: string;
  /** The connection's local address. */
  readonly near: string;
  /** WireGuard peers; connection i uses peers[i % length] at 10.123.0.(2 + i % length):51820. */
  readonly peers: readonly string[];
  /** A workload netns connection (its interface there); undefined: a host-process connection. */
  readonly netns?: { readonly name: string; readonly ifName: string };
}

/** Connection i's two entries: `c<i>/wireguard` (its tunnel) and `c<i>/kernel` (its local side). */
export function connectionEntries(i: number, o: ConnectionEntriesOptions): [string, DesiredEntry][] {
  return [
    [
      `c${i}/wireguard`,
      {
        kind: 'tunnel',
        peerPublicKey: o.peers[i % o.peers.length] ?? '',
        endpoint: `10.123.0.${2 + (i % o.peers.length)}:51820`,
        remotePrefixes: [`${o.far}/32`],
      },
    ],
    [
      `c${i}/kernel`,
      o.netns === undefined
        ? { kind: 'host', addresses: [`${o.near}/32`] }
        : {
            kind: 'netns',
            netns: { kind: 'named', name: o.netns.name },
            ifName: o.netns.ifName,
            addresses: [`${o.near}/32`],
            routes: [`${o.far}/32`],
          },
    ],
  ];
}
