import { execFailed } from '../host/index.js';
import { batchScript, parseAddresses, parseIpJson, parseLinks, parseRoutes } from '../host/ip/index.js';
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
 * One netns as `ip -json` printed it, before parsing: an apply that reads the host compares it with
 * the last read that needed no change, and skips parsing and planning when nothing differs.
 */
export interface NetnsText {
  /** False when the netns is gone (see NetnsView.exists). */
  readonly exists: boolean;
  /** `ip -json addr show`: links (with their groups) and addresses in one listing. */
  readonly addr: string;
  /** `ip -json route show table all proto <ours>`. */
  readonly routes: string;
  /** `ip -json neigh show proxy`, for the host only. */
  readonly neigh?: string;
}

const missingNetns: NetnsText = { exists: false, addr: '', routes: '' };

/**
 * Reads one netns in one process: `ip -json -batch -` with `addr show`, `route show table all
 * proto <ours>` and, for the host, `neigh show proxy` (a process start is most of a read's cost).
 * `ip` prints each listing as one line of JSON, so they are told apart at the `]\n[` between them
 * (no JSON value has a raw line break inside); an `ip` that prints them some other way is asked
 * once per listing instead.
 */
export async function readNetnsText(
  target: NetnsTarget,
  proto: number,
  withProxies: boolean,
): Promise<NetnsText> {
  const listings = [
    ['addr', 'show'],
    ['route', 'show', 'table', 'all', 'proto', String(proto)],
    ...(withProxies ? [['neigh', 'show', 'proxy']] : []),
  ];
  const argv = [...target.ipArgv, '-json', '-batch', '-'];
  const r = await target.runner.run(argv, { input: batchScript(listings) });
  if (r.code !== 0) {
    if (isMissingNetns(r.stderr)) return missingNetns;
    throw execFailed(argv, r);
  }
  const parts = splitListings(r.stdout, listings.length);
  if (parts === undefined) return readOneByOne(target, listings);
  const [addr = '', routes = '', neigh] = parts;
  return { exists: true, addr, routes, ...(withProxies ? { neigh: neigh ?? '' } : {}) };
}

/**
 * The stdout of `n` listings in one `ip -json -batch -`, one per listing; undefined when it is not
 * `n` JSON arrays one per line. Blank output: `ip` printed nothing for any of them (it prints nothing
 * at all for some empty listings).
 */
export function splitListings(stdout: string, n: number): string[] | undefined {
  const text = stdout.trim();
  if (text === '') return Array.from({ length: n }, () => '');
  const parts = text.split(']\n[');
  if (parts.length !== n) return undefined;
  const out = parts.map((p, i) => `${i === 0 ? '' : '['}${p}${i === n - 1 ? '' : ']'}`);
  return out.every((p) => p.startsWith('[') && p.endsWith(']')) ? out : undefined;
}

async function readOneByOne(target: NetnsTarget, listings: readonly string[][]): Promise<NetnsText> {
  const results = await Promise.all(
    listings.map(async (words) => {
      const argv = [...target.ipArgv, '-json', ...words];
      const r = await target.runner.run(argv);
      return { argv, r };
    }),
  );
  for (const { argv, r } of results) {
    if (r.code === 0) continue;
    if (isMissingNetns(r.stderr)) return missingNetns;
    throw execFailed(argv, r);
  }
  const [addr = '', routes = '', neigh] = results.map(({ r }) => r.stdout);
  return { exists: true, addr, routes, ...(neigh === undefined ? {} : { neigh }) };
}

/** The view of a read netns; the route protocol fills in the routes' (the listing leaves it out). */
export function parseNetnsView(text: NetnsText, proto: number): NetnsView {
  if (!text.exists) return emptyNetnsView;
  const proxies =
    text.neigh === undefined
      ? []
      : parseIpJson(text.neigh, 'neigh show proxy').flatMap((o) => {
          const dst = o['dst'];
          const dev = o['dev'];
          return typeof dst === 'string' && typeof dev === 'string' ? [{ dst, dev }] : [];
        });
  return {
    exists: true,
    links: parseLinks(text.addr),
    groups: Object.fromEntries(
      parseIpJson(text.addr, 'addr show').flatMap((o) => {
        const name = o['ifname'];
        const group = o['group'];
        // iproute2 names groups from /etc/iproute2/group and prints other ones as numbers.
        const kind =
          typeof group === 'number' ? String(group) : typeof group === 'string' ? group : 'default';
        return typeof name === 'string' && kind !== 'default' ? [[name, kind]] : [];
      }),
    ),
    addresses: parseAddresses(text.addr),
    routes: parseRoutes(text.routes, { table: 'all', protocol: proto }).map((r) =>
      r.protocol === undefined ? { ...r, protocol: String(proto) } : r,
    ),
    proxies,
  };
}

/**
 * What of a read netns a plan can depend on, as one string: the text without the addresses'
 * remaining lifetimes (they count down on addresses from DHCP or router advertisements).
 */
export function netnsTextKey(text: NetnsText): string {
  if (!text.exists) return '-';
  return `${text.addr.replace(lifetimes, '')}\n${text.routes}\n${text.neigh ?? ''}`;
}

const lifetimes = /"(?:valid|preferred)_life_time":\d+,?/g;

/** Reads one netns (readNetnsText) and parses it. */
export async function readNetnsView(
  target: NetnsTarget,
  proto: number,
  withProxies: boolean,
): Promise<NetnsView> {
  return parseNetnsView(await readNetnsText(target, proto, withProxies), proto);
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

/** What of a device a plan can depend on, as one string: its key, port and peers' configuration (no counters, no handshake times). */
export function deviceKey(state: DeviceState): string {
  let key = `${state.name} ${state.publicKey ?? ''} ${state.listenPort}`;
  for (const p of state.peers)
    key += `\n${p.publicKey} ${p.endpoint ?? ''} ${p.persistentKeepalive} ${p.allowedIps.join(',')}`;
  return key;
}
