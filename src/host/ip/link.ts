import { num, obj, parseIpJson, requireStr, str, strings } from './ip-json.js';

/** A network interface as `ip -json -details link show` reports it. */
export interface Link {
  readonly name: string;
  readonly index: number;
  readonly mtu: number;
  /** Administratively up (the UP flag), whatever the carrier says. */
  readonly up: boolean;
  /** Kernel operational state: UP, DOWN, UNKNOWN, LOWERLAYERDOWN … */
  readonly operState: string;
  /** `linkinfo.info_kind`: veth, bridge, wireguard, tun, dummy; absent for loopback and physical NICs. */
  readonly kind?: string;
  /** The bridge (or other master) this link is enslaved to. */
  readonly master?: string;
  /** For a veth in the same netns: the peer's name. */
  readonly peer?: string;
  /** For a veth whose peer lives in another netns: that netns' id as seen from here. */
  readonly peerNetnsId?: number;
  readonly macAddress?: string;
  readonly flags: readonly string[];
}

/** Parses `ip -json [-details] link show` output. */
export function parseLinks(stdout: string): Link[] {
  return parseIpJson(stdout, 'link show').map((o) => {
    const flags = strings(o, 'flags');
    const kind = str(obj(o, 'linkinfo') ?? {}, 'info_kind');
    const master = str(o, 'master');
    const peer = str(o, 'link');
    const peerNetnsId = num(o, 'link_netnsid');
    const macAddress = str(o, 'address');
    return {
      name: requireStr(o, 'ifname', 'link'),
      index: num(o, 'ifindex') ?? 0,
      mtu: num(o, 'mtu') ?? 0,
      up: flags.includes('UP'),
      operState: str(o, 'operstate') ?? 'UNKNOWN',
      flags,
      ...(kind === undefined ? {} : { kind }),
      ...(master === undefined ? {} : { master }),
      ...(peer === undefined ? {} : { peer }),
      ...(peerNetnsId === undefined ? {} : { peerNetnsId }),
      ...(macAddress === undefined ? {} : { macAddress }),
    };
  });
}
