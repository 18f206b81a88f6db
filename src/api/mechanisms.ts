import { isIP } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { AgentError } from '../errors/index.js';
import type { Mechanism } from './gen/connection_pb.js';
import { MechanismSchema } from './gen/connection_pb.js';

/**
 * The mechanism vocabulary of NSM (nsm-api.md §3): classes, types, parameter keys, default ports,
 * payloads and label names, plus builders for the mechanisms the agent offers. Every value here is
 * a string that travels on the wire, so each one is spelled exactly as upstream spells it
 * (networkservicemesh/api pkg/api/networkservice/mechanisms/*), including its odd casing.
 */

/** `Mechanism.cls`: LOCAL joins a workload to its local forwarder, REMOTE joins two forwarders. */
export const MechanismClass = {
  LOCAL: 'LOCAL',
  REMOTE: 'REMOTE',
} as const;
export type MechanismClass = (typeof MechanismClass)[keyof typeof MechanismClass];

/** `Mechanism.type`. */
export const MechanismType = {
  KERNEL: 'KERNEL',
  MEMIF: 'MEMIF',
  VFIO: 'VFIO',
  NOOP: 'NOOP',
  VXLAN: 'VXLAN',
  WIREGUARD: 'WIREGUARD',
  IPSEC: 'IPSEC',
  VLAN: 'VLAN',
  SRV6: 'SRV6',
} as const;
export type MechanismType = (typeof MechanismType)[keyof typeof MechanismType];

/** The class each type is used with (§3.1); a forwarder filters preferences by it. */
export const MECHANISM_CLASS_OF: Readonly<Record<MechanismType, MechanismClass>> = {
  KERNEL: MechanismClass.LOCAL,
  MEMIF: MechanismClass.LOCAL,
  VFIO: MechanismClass.LOCAL,
  NOOP: MechanismClass.LOCAL,
  VXLAN: MechanismClass.REMOTE,
  WIREGUARD: MechanismClass.REMOTE,
  IPSEC: MechanismClass.REMOTE,
  VLAN: MechanismClass.REMOTE,
  SRV6: MechanismClass.REMOTE,
};

/** True when `s` is one of the mechanism types NSM defines (peers may send others). */
export function isMechanismType(s: string): s is MechanismType {
  return Object.hasOwn(MECHANISM_CLASS_OF, s);
}

/** Parameter keys shared by several mechanism types (upstream `mechanisms/common`). */
export const CommonParam = {
  SRC_IP: 'src_ip',
  DST_IP: 'dst_ip',
  SRC_PORT: 'src_port',
  DST_PORT: 'dst_port',
  /** Pre-NAT addresses, set by interdomain `swapip`. */
  ORIG_SRC_IP: 'orig_src_ip',
  ORIG_DST_IP: 'orig_dst_ip',
  NETNS_INODE: 'netnsInode',
  INTERFACE_NAME: 'name',
  /** `file:///proc/<pid>/ns/net` or, while an fd is in flight, `inode://<dev>/<ino>`. */
  INODE_URL: 'inodeURL',
  PCI_ADDRESS: 'pciAddress',
  DEVICE_TOKEN_ID: 'tokenID',
  MTU: 'MTU',
} as const;

export const KernelParam = {
  INTERFACE_NAME: CommonParam.INTERFACE_NAME,
  NETNS_URL: CommonParam.INODE_URL,
  NETNS_INODE: CommonParam.NETNS_INODE,
  PCI_ADDRESS: CommonParam.PCI_ADDRESS,
  DEVICE_TOKEN_ID: CommonParam.DEVICE_TOKEN_ID,
  /** Boolean string. */
  SUPPORTS_VLAN: 'supportsVlan',
  /** Decimal 0..4095. */
  VLAN: 'vlan',
  /** Boolean string. */
  ROUTE_LOCAL_NET: 'routeLocalNet',
  /** `;`-separated Go templates over .NsmInterfaceName, .NsmSrcIPs, .NsmDstIPs. */
  IPTABLES4_NAT_TEMPLATE: 'IPTables4NatTemplate',
} as const;

/** The only scheme a KERNEL netns URL may have when it is consumed (`nshandle.FromURL`). */
export const KERNEL_NETNS_URL_SCHEME = 'file';
/** What a client or NSE puts in `inodeURL` for its own network namespace. */
export const OWN_NETNS_URL = 'file:///proc/thread-self/ns/net';
/** IFNAMSIZ − 1: longer names are rejected by the kernel. */
export const LINUX_IFNAME_MAX_LENGTH = 15;

export const MemifParam = {
  /** Abstract socket name. */
  SOCKET_FILENAME: 'socketfile',
  /** Netns URL (abstract socket) or socket file URL (filesystem socket); upstream uses one key for both. */
  INODE_URL: CommonParam.INODE_URL,
} as const;

export const VfioParam = {
  CGROUP_DIR: 'cgroupDir',
  IOMMU_GROUP: 'iommuGroup',
  PCI_ADDRESS: CommonParam.PCI_ADDRESS,
  DEVICE_TOKEN_ID: CommonParam.DEVICE_TOKEN_ID,
  VFIO_MAJOR: 'vfioMajor',
  VFIO_MINOR: 'vfioMinor',
  DEVICE_MAJOR: 'deviceMajor',
  DEVICE_MINOR: 'deviceMinor',
} as const;

export const VxlanParam = {
  SRC_IP: CommonParam.SRC_IP,
  DST_IP: CommonParam.DST_IP,
  SRC_PORT: CommonParam.SRC_PORT,
  DST_PORT: CommonParam.DST_PORT,
  /** 24-bit decimal. */
  VNI: 'vni',
  MTU: CommonParam.MTU,
} as const;

export const WireguardParam = {
  SRC_IP: CommonParam.SRC_IP,
  DST_IP: CommonParam.DST_IP,
  SRC_PORT: CommonParam.SRC_PORT,
  DST_PORT: CommonParam.DST_PORT,
  /** Base64 WireGuard public keys: the client offers src, the server answers with dst. */
  SRC_PUBLIC_KEY: 'src_public_key',
  DST_PUBLIC_KEY: 'dst_public_key',
  MTU: CommonParam.MTU,
} as const;

/** IPsec reuses the WireGuard key names, but the values are base64 certificates for IKEv2 RSA. */
export const IpsecParam = WireguardParam;

export const VlanParam = {
  VLAN_ID: 'vlan-id',
} as const;

export const Srv6Param = {
  SRC_HOST_IP: 'src_host_ip',
  DST_HOST_IP: 'dst_host_ip',
  SRC_BSID: 'src_bsid',
  DST_BSID: 'dst_bsid',
  SRC_LOCAL_SID: 'src_localsid',
  DST_LOCAL_SID: 'dst_localsid',
  SRC_HOST_LOCAL_SID: 'src_host_localsid',
  DST_HOST_LOCAL_SID: 'dst_host_localsid',
  SRC_HW_ADDR: 'src_hw_addr',
  DST_HW_ADDR: 'dst_hw_addr',
} as const;

/** UDP ports NSM forwarders use when a mechanism does not name one. */
export const DefaultPort = {
  WIREGUARD: 51820,
  VXLAN: 4789,
  /** IKEv2 NAT-T; forwarders also open UDP 500. */
  IPSEC: 4500,
} as const;

/** `Connection.payload` / `NetworkService.payload`. VXLAN carries ETHERNET; WireGuard and IPsec carry IP. */
export const Payload = {
  IP: 'IP',
  ETHERNET: 'ETHERNET',
} as const;
export type Payload = (typeof Payload)[keyof typeof Payload];

/** Connection label names with a meaning upstream (`labels/sriov`). */
export const Label = {
  SRIOV_TOKEN: 'sriovToken',
  SERVICE_DOMAIN: 'serviceDomain',
} as const;

export interface KernelMechanismOptions {
  /** Interface name inside the workload netns; omitted lets the forwarder pick one. */
  readonly name?: string;
  /** Netns URL; defaults to OWN_NETNS_URL, which sendfd turns into an fd on the way out. */
  readonly inodeURL?: string;
}

/** A KERNEL mechanism preference for a client or NSE. */
export function kernelMechanism(options: KernelMechanismOptions = {}): Mechanism {
  const parameters: Record<string, string> = {
    [KernelParam.NETNS_URL]: nonEmpty(options.inodeURL ?? OWN_NETNS_URL, 'KERNEL', KernelParam.NETNS_URL),
  };
  if (options.name !== undefined) parameters[KernelParam.INTERFACE_NAME] = interfaceName(options.name);
  return create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL, parameters });
}

/** A NOOP mechanism: the connection carries context only, no datapath. */
export function noopMechanism(): Mechanism {
  return create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.NOOP });
}

export interface WireguardMechanismOptions {
  /** The offering (client) side: tunnel source address and public key. */
  readonly srcIp: string;
  readonly srcPublicKey: string;
  /** Defaults to DefaultPort.WIREGUARD. */
  readonly srcPort?: number;
  /** The answering (server) side fills these in its reply. */
  readonly dstIp?: string;
  readonly dstPublicKey?: string;
  readonly dstPort?: number;
  readonly mtu?: number;
}

/** A WIREGUARD mechanism; values are checked here so a bad offer fails before it reaches a peer. */
export function wireguardMechanism(options: WireguardMechanismOptions): Mechanism {
  const t = MechanismType.WIREGUARD;
  const parameters: Record<string, string> = {
    [WireguardParam.SRC_IP]: ipAddress(options.srcIp, t, WireguardParam.SRC_IP),
    [WireguardParam.SRC_PORT]: port(options.srcPort ?? DefaultPort.WIREGUARD, t, WireguardParam.SRC_PORT),
    [WireguardParam.SRC_PUBLIC_KEY]: wireguardKey(options.srcPublicKey, t, WireguardParam.SRC_PUBLIC_KEY),
  };
  if (options.dstIp !== undefined) {
    parameters[WireguardParam.DST_IP] = ipAddress(options.dstIp, t, WireguardParam.DST_IP);
  }
  if (options.dstPort !== undefined) {
    parameters[WireguardParam.DST_PORT] = port(options.dstPort, t, WireguardParam.DST_PORT);
  }
  if (options.dstPublicKey !== undefined) {
    parameters[WireguardParam.DST_PUBLIC_KEY] = wireguardKey(
      options.dstPublicKey,
      t,
      WireguardParam.DST_PUBLIC_KEY,
    );
  }
  if (options.mtu !== undefined) parameters[WireguardParam.MTU] = mtu(options.mtu, t);
  return create(MechanismSchema, { cls: MechanismClass.REMOTE, type: t, parameters });
}

export interface VxlanMechanismOptions {
  readonly srcIp: string;
  /** Defaults to DefaultPort.VXLAN. */
  readonly srcPort?: number;
  readonly dstIp?: string;
  readonly dstPort?: number;
  /** 0..2^24−1; normally chosen by the server. */
  readonly vni?: number;
  readonly mtu?: number;
}

/** A VXLAN mechanism (ETHERNET payloads only). */
export function vxlanMechanism(options: VxlanMechanismOptions): Mechanism {
  const t = MechanismType.VXLAN;
  const parameters: Record<string, string> = {
    [VxlanParam.SRC_IP]: ipAddress(options.srcIp, t, VxlanParam.SRC_IP),
    [VxlanParam.SRC_PORT]: port(options.srcPort ?? DefaultPort.VXLAN, t, VxlanParam.SRC_PORT),
  };
  if (options.dstIp !== undefined)
    parameters[VxlanParam.DST_IP] = ipAddress(options.dstIp, t, VxlanParam.DST_IP);
  if (options.dstPort !== undefined)
    parameters[VxlanParam.DST_PORT] = port(options.dstPort, t, VxlanParam.DST_PORT);
  if (options.vni !== undefined) {
    if (!isIntIn(options.vni, 0, VNI_MAX))
      throw invalid(t, VxlanParam.VNI, options.vni, `an integer 0..${VNI_MAX}`);
    parameters[VxlanParam.VNI] = String(options.vni);
  }
  if (options.mtu !== undefined) parameters[VxlanParam.MTU] = mtu(options.mtu, t);
  return create(MechanismSchema, { cls: MechanismClass.REMOTE, type: t, parameters });
}

/** Largest VXLAN network identifier (24 bits). */
export const VNI_MAX = 0xff_ffff;
/** Linux caps an interface MTU at IP_MAX_MTU. */
export const MTU_MAX = 0xffff;

/**
 * Checks a Linux interface name the way the kernel's dev_valid_name does, so a bad name is reported
 * with the parameter that carried it instead of as an opaque netlink error later.
 */
export function isValidInterfaceName(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) <= LINUX_IFNAME_MAX_LENGTH &&
    name !== '.' &&
    name !== '..' &&
    !/[/:\s]/.test(name)
  );
}

/** Standard base64 of 32 bytes, the only form `wg` and the kernel accept. */
export function isWireguardKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(key);
}

function interfaceName(name: string): string {
  if (!isValidInterfaceName(name)) {
    throw invalid(
      MechanismType.KERNEL,
      KernelParam.INTERFACE_NAME,
      name,
      `1..${LINUX_IFNAME_MAX_LENGTH} bytes without '/', ':' or whitespace`,
    );
  }
  return name;
}

function ipAddress(ip: string, type: MechanismType, key: string): string {
  if (isIP(ip) === 0) throw invalid(type, key, ip, 'an IPv4 or IPv6 address without prefix length');
  return ip;
}

function port(p: number, type: MechanismType, key: string): string {
  if (!isIntIn(p, 1, 65535)) throw invalid(type, key, p, 'a port 1..65535');
  return String(p);
}

function mtu(m: number, type: MechanismType): string {
  if (!isIntIn(m, 1, MTU_MAX)) throw invalid(type, CommonParam.MTU, m, `an MTU 1..${MTU_MAX}`);
  return String(m);
}

function wireguardKey(key: string, type: MechanismType, param: string): string {
  if (!isWireguardKey(key)) throw invalid(type, param, key, 'a base64 WireGuard public key (44 characters)');
  return key;
}

function nonEmpty(s: string, type: MechanismType, key: string): string {
  if (s === '') throw invalid(type, key, s, 'a non-empty string');
  return s;
}

function isIntIn(n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max;
}

function invalid(type: string, key: string, value: string | number, expected: string): AgentError {
  return new AgentError(
    'INVALID_ARGUMENT',
    `${type} mechanism: ${key} ${JSON.stringify(value)} is not valid`,
    {
      hint: `give ${expected}`,
      details: { mechanism: type, parameter: key },
    },
  );
}
