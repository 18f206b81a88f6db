import { execFailed } from '../host/index.js';
import { parseAddresses, parseIpJson, parseLinks, parseRoutes } from '../host/ip/index.js';
import type { Address, Link, Route } from '../host/ip/index.js';
import type { DeviceState, WireGuard } from '../host/wireguard/index.js';
import { isMissingNetns } from './netns-target.js';
import type { NetnsTarget } from './netns-target.js';

/** What one netns has, as far as the forwarder cares: links, addresses, its own routes, proxy ARP entries. */
export interface NetnsView {
  /** False when the netns is gone (its workload exited): everything in it went with it. */
  readonly exists: boolean;
  readonly links: readonly Link[];
  /** Link name → its link group (`ip link … group`), for links not in the default group. */
  readonly groups: Readonly<Record<string, string>>;
  readonly addresses: readonly Address[];
  /** Only routes with the forwarder's route protocol. */
  readonly routes: readonly Route[];
  readonly proxies: readonly ProxyNeighbour[];
}

export interface ProxyNeighbour {
  readonly dst: string;
  readonly dev: string;
}

/** The host as read before a plan: the host netns, the WireGuard devices looked at, the workload netns. */
export interface HostState {
  readonly host: NetnsView;
  /** By device name; a device that does not exist is absent. */
  readonly devices: Readonly<Record<string, DeviceState>>;
  /** By netns key (see netnsKey). */
  readonly workloads: Readonly<Record<string, NetnsView>>;
}

export const emptyNetnsView: NetnsView = {
  exists: false,
  links: [],
  groups: {},
  addresses: [],
  routes: [],
  proxies: [],
};

/**
 * Reads one netns with three commands at most: `ip -details addr show` (links and addresses in one
 * listing), `ip route show table all proto <ours>`, and for the host `ip neigh show proxy`.
 */
export async function readNetnsView(
  target: NetnsTarget,
  proto: number,
  withProxies: boolean,
): Promise<NetnsView> {
  const addrArgv = [...target.ipArgv, '-json', '-details', 'addr', 'show'];
  const routeFilter = { table: 'all', protocol: proto } as const;
  const routeArgv = [...target.ipArgv, '-json', 'route', 'show', 'table', 'all', 'proto', String(proto)];
  const neighArgv = [...target.ipArgv, '-json', 'neigh', 'show', 'proxy'];
  // The reads run side by side: every apply starts with them, and each is a process start.
  const [addr, routes, neigh] = await Promise.all([
    target.runner.run(addrArgv),
    target.runner.run(routeArgv),
    withProxies ? target.runner.run(neighArgv) : Promise.resolve(undefined),
  ]);
  if (addr.code !== 0) {
    if (isMissingNetns(addr.stderr)) return emptyNetnsView;
    throw execFailed(addrArgv, addr);
  }
  if (routes.code !== 0) throw execFailed(routeArgv, routes);
  if (neigh !== undefined && neigh.code !== 0) throw execFailed(neighArgv, neigh);
  let proxies: ProxyNeighbour[] = [];
  if (neigh !== undefined) {
    proxies = parseIpJson(neigh.stdout, 'neigh show proxy').flatMap((o) => {
      const dst = o['dst'];
      const dev = o['dev'];
      return typeof dst === 'string' && typeof dev === 'string' ? [{ dst, dev }] : [];
    });
  }
  return {
    exists: true,
    links: parseLinks(addr.stdout),
    groups: Object.fromEntries(
      parseIpJson(addr.stdout, 'addr show').flatMap((o) => {
        const name = o['ifname'];
        const group = o['group'];
        // iproute2 names groups from /etc/iproute2/group and prints other ones as numbers.
        const text =
          typeof group === 'number' ? String(group) : typeof group === 'string' ? group : 'default';
        return typeof name === 'string' && text !== 'default' ? [[name, text]] : [];
      }),
    ),
    addresses: parseAddresses(addr.stdout),
    routes: parseRoutes(routes.stdout, routeFilter).map((r) =>
      r.protocol === undefined ? { ...r, protocol: String(proto) } : r,
    ),
    proxies,
  };
}

/** The devices by name that exist, through the WireGuard port (UAPI or `wg show`). */
export async function readDevices(
  wg: WireGuard,
  names: readonly string[],
): Promise<Record<string, DeviceState>> {
  const out: Record<string, DeviceState> = {};
  for (const name of new Set(names)) {
    const state = await wg.show(name);
    if (state !== undefined) out[name] = state;
  }
  return out;
}
