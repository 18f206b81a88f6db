import type { NetnsRef } from '../host/index.js';
import type { Address, Link, Route } from '../host/ip/index.js';
import type { DeviceState, PeerConfig, PeerState } from '../host/wireguard/index.js';
import { publicKeyOf } from '../host/wireguard/index.js';
import { addressOf, canonicalAddress, canonicalPrefix, hostPrefix, isHostPrefix } from './cidr.js';
import type { DesiredEntry, DesiredState, DeviceSpec } from './desired-state.js';
import { netnsKey } from './desired-state.js';
import type { HostState, NetnsView } from './host-state.js';
import { emptyNetnsView } from './host-state.js';
import type { BatchStage, ForwarderOp, Where } from './ops.js';
import { onHost } from './ops.js';
import { isOwnedLinkName, ownedLinkName, removalGroup } from './owner-mark.js';
import type { OwnerMark } from './owner-mark.js';

export interface PlanInput {
  readonly current: HostState;
  readonly desired: DesiredState;
  readonly mark: OwnerMark;
  /** WireGuard devices the state record says the forwarder made; any but the desired one is removed. */
  readonly ownedDevices: readonly string[];
  /**
   * Peer public key → the endpoint this forwarder last set. A peer whose endpoint differs from it
   * has roamed (WireGuard follows its latest authenticated packet, reliability.md R22) and keeps
   * its new endpoint; only a changed declaration sets it again.
   */
  readonly declaredEndpoints?: Readonly<Record<string, string>>;
  /**
   * The whole desired state when `desired` is restricted to the entries a change touches
   * (Contributors): whether the device keeps an IPv4 address, and which routes go through it, are
   * taken from it (see bareRoutes).
   */
  readonly whole?: DesiredState;
}

/**
 * The ordered operations that take the host from `current` to `desired`, touching only what
 * carries the forwarder's mark. Pure: same input, same ops. Something already as desired gets no
 * op at all, so re-applying the same state issues nothing and traffic on it is never cut.
 */
export function plan(input: PlanInput): ForwarderOp[] {
  const { current, desired, mark } = input;
  const t = target(desired, mark);
  const proto = String(mark.proto);
  const ops: ForwarderOp[] = [];
  const batches = new Batches();
  const host = current.host;
  const hostIndex = indexOf(host);

  // 1. The device, then its peers.
  const dev = desired.device;
  const curDev = dev === undefined ? undefined : current.devices[dev.name];
  let curPeers: readonly PeerState[] = [];
  let curDevAddresses: readonly string[] = [];
  if (dev !== undefined) {
    const link = hostIndex.links.get(dev.name);
    if (
      curDev === undefined ||
      link === undefined ||
      curDev.publicKey !== devicePublicKey(dev.privateKey) ||
      curDev.listenPort !== dev.listenPort
    ) {
      ops.push({ op: 'device-ensure', device: dev });
    } else if (link.mtu !== dev.mtu || !link.up) {
      ops.push({
        op: 'device-link',
        name: dev.name,
        ...(link.mtu === dev.mtu ? {} : { mtu: dev.mtu }),
        ...(link.up ? {} : { up: true }),
      });
    }
    curPeers = curDev?.peers ?? [];
    curDevAddresses = link === undefined ? [] : addressesOn(host, dev.name);
    const declared = input.declaredEndpoints ?? {};
    const changed: PeerConfig[] = [];
    const peerByKey = new Map<string, PeerState>();
    for (const c of curPeers) if (!peerByKey.has(c.publicKey)) peerByKey.set(c.publicKey, c);
    for (const p of t.peers.values()) {
      const have = peerByKey.get(p.publicKey);
      const roamed = have !== undefined && p.endpoint !== undefined && p.endpoint === declared[p.publicKey];
      const want: PeerConfig = roamed ? withoutEndpoint(p) : p;
      if (!samePeer(want, have)) changed.push(want);
    }
    if (changed.length > 0) ops.push({ op: 'peers-set', device: dev.name, peers: changed });
  }

  // 2. Links: veth pairs into workload netns, host end up first.
  const freshVeths = new Set<string>();
  for (const v of t.veths.values()) {
    const hostLink = hostIndex.links.get(v.name);
    const wl = current.workloads[netnsKey(v.netns)] ?? emptyNetnsView;
    const wlLink = indexOf(wl).links.get(v.ifName);
    const whereWl: Where = { kind: 'workload', netns: v.netns };
    if (hostLink !== undefined && host.groups[v.name] === String(removalGroup(mark))) {
      // A crash between the two steps of a group removal; this link is wanted again.
      batches.add(onHost, 'links', ['link', 'set', 'dev', v.name, 'group', 'default']);
    }
    if (hostLink !== undefined && wlLink !== undefined) {
      if (hostLink.mtu !== v.mtu || !hostLink.up)
        batches.add(onHost, 'links', ['link', 'set', 'dev', v.name, 'mtu', String(v.mtu), 'up']);
      if (wlLink.mtu !== v.mtu || !wlLink.up)
        batches.add(whereWl, 'links', ['link', 'set', 'dev', v.ifName, 'mtu', String(v.mtu), 'up']);
      continue;
    }
    // Half a pair (its workload end went away, or a crash between steps): make it again.
    if (hostLink !== undefined) batches.add(onHost, 'links', ['link', 'del', 'dev', v.name]);
    freshVeths.add(v.name);
    batches.add(onHost, 'links', [
      'link',
      'add',
      v.name,
      'mtu',
      String(v.mtu),
      'type',
      'veth',
      'peer',
      'name',
      v.ifName,
      'mtu',
      String(v.mtu),
      'netns',
      linkNetnsArg(v.netns),
    ]);
    batches.add(onHost, 'links', ['link', 'set', 'dev', v.name, 'up']);
    // The host end answers ARP for the workload's gateway (proxy entry); without this the kernel
    // delays each proxied answer by up to 0.8 s (proxy_delay), i.e. the first packet of a workload.
    batches.add(onHost, 'links', [
      'ntable',
      'change',
      'name',
      'arp_cache',
      'dev',
      v.name,
      'proxy_delay',
      '0',
    ]);
    batches.add(whereWl, 'links', ['link', 'set', 'dev', v.ifName, 'up']);
  }

  // 3. Addresses: on the device (host processes) and inside workload netns.
  if (dev !== undefined) {
    const have = new Set(curDevAddresses);
    for (const a of t.deviceAddresses) {
      if (!have.has(a)) batches.add(onHost, 'addresses', ['addr', 'replace', a, 'dev', dev.name]);
    }
  }
  for (const [key, w] of t.workloads) {
    const view = current.workloads[key] ?? emptyNetnsView;
    for (const [ifName, addrs] of w.addresses) {
      const vethName = w.vethOf.get(ifName) ?? '';
      const have = new Set(freshVeths.has(vethName) ? [] : addressesOn(view, ifName));
      for (const a of addrs) {
        if (!have.has(a))
          batches.add({ kind: 'workload', netns: w.netns }, 'addresses', [
            'addr',
            'replace',
            a,
            'dev',
            ifName,
          ]);
      }
    }
  }

  // 4. Proxy ARP on host veth ends for the gateways workloads use, then routes.
  const curProxies = new Set(
    host.proxies.filter((p) => isOwnedLinkName(mark, p.dev)).map((p) => `${p.dst} ${p.dev}`),
  );
  for (const p of t.hostProxies) {
    if (!curProxies.has(p)) {
      const [dst = '', devName = ''] = p.split(' ');
      batches.add(onHost, 'proxies', ['neigh', 'replace', 'proxy', dst, 'dev', devName]);
    }
  }
  routeChanges(batches, onHost, host.routes, t.hostRoutes, proto);
  for (const [key, w] of t.workloads) {
    const view = current.workloads[key] ?? emptyNetnsView;
    routeChanges(batches, { kind: 'workload', netns: w.netns }, view.routes, w.routes, proto);
  }

  // 5. Removals, in reverse: routes, proxies, addresses, links.
  routeRemovals(batches, onHost, host.routes, t.hostRoutes, proto);
  for (const [key, view] of Object.entries(current.workloads)) {
    if (!view.exists) continue;
    const w = t.workloads.get(key);
    const netns = w?.netns ?? t.knownNetns.get(key) ?? refFromKey(key);
    if (netns !== undefined)
      routeRemovals(
        batches,
        { kind: 'workload', netns },
        view.routes,
        w?.routes ?? new Map<string, RouteWant>(),
        proto,
      );
  }
  for (const p of curProxies) {
    if (!t.hostProxies.has(p)) {
      const [dst = '', devName = ''] = p.split(' ');
      batches.add(onHost, 'remove-proxies', ['neigh', 'del', 'proxy', dst, 'dev', devName]);
    }
  }
  if (dev !== undefined) {
    let removedIPv4 = false;
    for (const a of curDevAddresses) {
      if (!t.deviceAddresses.has(a)) {
        batches.add(onHost, 'remove-addresses', ['addr', 'del', a, 'dev', dev.name]);
        removedIPv4 ||= isIPv4(a);
      }
    }
    if (removedIPv4 && !hasIPv4(t.deviceAddresses) && !wholeKeepsIPv4(input.whole)) {
      const all = input.whole === undefined ? t : target(input.whole, mark);
      for (const words of bareRoutes(all.hostRoutes, dev.name, proto))
        batches.add(onHost, 'remove-addresses', words);
    }
  }
  for (const [key, w] of t.workloads) {
    const view = current.workloads[key] ?? emptyNetnsView;
    const where: Where = { kind: 'workload', netns: w.netns };
    for (const [ifName, addrs] of w.addresses) {
      if (freshVeths.has(w.vethOf.get(ifName) ?? '')) continue;
      let removedIPv4 = false;
      for (const a of addressesOn(view, ifName)) {
        if (!addrs.has(a)) {
          batches.add(where, 'remove-addresses', ['addr', 'del', a, 'dev', ifName]);
          removedIPv4 ||= isIPv4(a);
        }
      }
      // A workload netns is planned whole (Contributors), so its own target has all its routes.
      if (removedIPv4 && !hasIPv4(addrs))
        for (const words of bareRoutes(w.routes, ifName, proto))
          batches.add(where, 'remove-addresses', words);
    }
  }
  const doomed = host.links
    .filter((l) => isOwnedLinkName(mark, l.name) && !t.veths.has(l.name))
    .map((l) => l.name);
  const group = String(removalGroup(mark));
  const inGroup = Object.entries(host.groups)
    .filter(([, g]) => g === group)
    .map(([name]) => name);
  if (doomed.length > 1 && inGroup.every((name) => doomed.includes(name))) {
    // One teardown for all of them: veth deletion costs a kernel grace period each.
    for (const name of doomed)
      batches.add(onHost, 'remove-links', ['link', 'set', 'dev', name, 'group', group]);
    batches.add(onHost, 'remove-links', ['link', 'del', 'group', group]);
  } else {
    for (const name of doomed) batches.add(onHost, 'remove-links', ['link', 'del', 'dev', name]);
  }

  ops.push(...batches.ops());

  // 6. Peers nobody claims, then devices nobody wants.
  if (dev !== undefined) {
    const stale = curPeers.filter((c) => !t.peers.has(c.publicKey)).map((c) => c.publicKey);
    if (stale.length > 0) ops.push({ op: 'peers-remove', device: dev.name, keys: stale });
  }
  for (const name of new Set([...input.ownedDevices, ...Object.keys(current.devices)])) {
    if (name !== dev?.name) ops.push({ op: 'device-delete', name });
  }
  return ops;
}

/**
 * When the last IPv4 address leaves a link, Linux drops every IPv4 route through it (fib_disable_ip),
 * ours included; IPv6 routes stay (checked: test/e2e/forwarder-last-address.test.ts). So an apply
 * that takes a link's last IPv4 address away puts the IPv4 routes it wants through that link back
 * right after the `addr del`, in the same `ip -batch`: the routes are gone for microseconds, not
 * until the next drift repair. (Keeping a placeholder address on the link instead would be an
 * address no connection asked for, visible to workloads and to adopt.) `route replace`: the routes
 * are there again whether or not the kernel dropped them.
 */
function bareRoutes(want: Map<string, RouteWant>, dev: string, proto: string): string[][] {
  const out: string[][] = [];
  for (const [k, r] of want) {
    const dst = k.slice(k.indexOf('|') + 1);
    if (r.dev === dev && isIPv4(dst)) out.push(routeWords('replace', dst, r, proto));
  }
  return out;
}

function isIPv4(cidr: string): boolean {
  return !cidr.includes(':');
}

function hasIPv4(cidrs: Iterable<string>): boolean {
  for (const c of cidrs) if (isIPv4(c)) return true;
  return false;
}

/** True when some host entry of `whole` still puts an IPv4 address on the device. */
function wholeKeepsIPv4(whole: DesiredState | undefined): boolean {
  if (whole === undefined) return false;
  for (const e of Object.values(whole.entries))
    if (e.kind === 'host' && hasIPv4(factsOf(e).addresses)) return true;
  return false;
}

// ---- the host objects a desired state needs

interface RouteWant {
  readonly dev: string;
  readonly gateway?: string;
  readonly onlink?: boolean;
}

interface VethWant {
  readonly name: string;
  readonly ifName: string;
  readonly netns: NetnsRef;
  readonly mtu: number;
}

interface WorkloadWant {
  readonly netns: NetnsRef;
  /** ifName → its addresses. */
  readonly addresses: Map<string, Set<string>>;
  readonly routes: Map<string, RouteWant>;
  /** ifName → host end name. */
  readonly vethOf: Map<string, string>;
}

interface Target {
  readonly peers: Map<string, PeerConfig>;
  readonly deviceAddresses: Set<string>;
  readonly veths: Map<string, VethWant>;
  readonly hostRoutes: Map<string, RouteWant>;
  readonly hostProxies: Set<string>;
  readonly workloads: Map<string, WorkloadWant>;
  readonly knownNetns: Map<string, NetnsRef>;
}

export const mainTable = 'main';

/**
 * True when `a` and `b` make the host look the same: the same plan against the same host (entries
 * that only repeat what another entry already asks for — a second connection to the same service
 * address — change nothing). Compares the targets as built, stopping at the first difference.
 */
export function sameTarget(a: DesiredState, b: DesiredState, mark: OwnerMark): boolean {
  if (a === b) return true;
  if (!sameValue(a.device ?? null, b.device ?? null)) return false;
  const ta = target(a, mark);
  const tb = target(b, mark);
  return (
    ta.peers.size === tb.peers.size &&
    ta.veths.size === tb.veths.size &&
    ta.hostRoutes.size === tb.hostRoutes.size &&
    ta.workloads.size === tb.workloads.size &&
    sameValue(ta.deviceAddresses, tb.deviceAddresses) &&
    sameValue(ta.hostProxies, tb.hostProxies) &&
    sameValue(ta.peers, tb.peers) &&
    sameValue(ta.veths, tb.veths) &&
    sameValue(ta.hostRoutes, tb.hostRoutes) &&
    sameValue(ta.workloads, tb.workloads)
  );
}

/** Deep equality of the plain data a target is made of: Maps and Sets by content, arrays in order, objects by own keys. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !sameValue(v, b.get(k))) return false;
    return true;
  }
  if (a instanceof Set) {
    if (!(b instanceof Set) || a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (b instanceof Map || b instanceof Set || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (
      !Object.hasOwn(b, k) ||
      !sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
    )
      return false;
  }
  return true;
}

/**
 * The host as a successful apply of `desired` leaves it, as far as plan() looks: the device with
 * its peers and addresses, the veth pairs up with their addresses, our routes and proxy entries —
 * so plan(assumedHost(a), b) gives the ops from a to b without reading the host, and
 * plan(assumedHost(a), a) gives none. Only for the forwarder's own changes one after another: it
 * knows nothing of what changed behind its back (drift repair and a failed op read the real host).
 */
export function assumedHost(desired: DesiredState, mark: OwnerMark): HostState {
  const known = assumedHosts.get(desired);
  if (known !== undefined && known.mark.prefix === mark.prefix && known.mark.proto === mark.proto)
    return known.host;
  const host = buildAssumedHost(desired, mark);
  assumedHosts.set(desired, { mark, host });
  return host;
}

const assumedHosts = new WeakMap<DesiredState, { readonly mark: OwnerMark; readonly host: HostState }>();

function buildAssumedHost(desired: DesiredState, mark: OwnerMark): HostState {
  const t = target(desired, mark);
  const proto = String(mark.proto);
  const link = (name: string, mtu: number): Link => ({
    name,
    index: 0,
    mtu,
    up: true,
    operState: 'UNKNOWN',
    flags: [],
  });
  const address = (dev: string, cidr: string): Address => ({
    dev,
    family: cidr.includes(':') ? 'inet6' : 'inet',
    cidr,
    scope: 'global',
    tentative: false,
  });
  const routes = (want: Map<string, RouteWant>): Route[] =>
    [...want].map(([k, r]) => ({
      dst: k.slice(k.indexOf('|') + 1),
      dev: r.dev,
      ...(r.gateway === undefined ? {} : { gateway: r.gateway }),
      protocol: proto,
    }));
  const dev = desired.device;
  const hostLinks: Link[] = [...t.veths.values()].map((v) => link(v.name, v.mtu));
  const hostAddresses: Address[] = [];
  const devices: Record<string, DeviceState> = {};
  if (dev !== undefined) {
    hostLinks.unshift(link(dev.name, dev.mtu));
    for (const a of t.deviceAddresses) hostAddresses.push(address(dev.name, a));
    devices[dev.name] = {
      name: dev.name,
      publicKey: devicePublicKey(dev.privateKey),
      listenPort: dev.listenPort,
      peers: [...t.peers.values()].map((p): PeerState => ({
        publicKey: p.publicKey,
        ...(p.endpoint === undefined ? {} : { endpoint: p.endpoint }),
        allowedIps: p.allowedIps,
        lastHandshakeMs: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: p.persistentKeepalive ?? 0,
      })),
    };
  }
  const workloads: Record<string, NetnsView> = {};
  for (const [key, w] of t.workloads) {
    const mtuOf = (ifName: string): number => t.veths.get(w.vethOf.get(ifName) ?? '')?.mtu ?? 1420;
    workloads[key] = {
      exists: true,
      links: [...w.vethOf.keys()].map((ifName) => link(ifName, mtuOf(ifName))),
      groups: {},
      addresses: [...w.addresses].flatMap(([ifName, addrs]) => [...addrs].map((a) => address(ifName, a))),
      routes: routes(w.routes),
      proxies: [],
    };
  }
  return {
    host: {
      exists: true,
      links: hostLinks,
      groups: {},
      addresses: hostAddresses,
      routes: routes(t.hostRoutes),
      proxies: [...t.hostProxies].map((p) => {
        const [dst = '', devName = ''] = p.split(' ');
        return { dst, dev: devName };
      }),
    },
    devices,
    workloads,
  };
}

/**
 * target(desired), computed once per desired state object (states are immutable: an apply makes a
 * new one); plan, assumedHost and sameTarget of the same state share it.
 */
const targets = new WeakMap<DesiredState, { readonly mark: OwnerMark; readonly target: Target }>();

function target(desired: DesiredState, mark: OwnerMark): Target {
  const known = targets.get(desired);
  if (known !== undefined && known.mark.prefix === mark.prefix) return known.target;
  const t = buildTarget(desired, mark);
  targets.set(desired, { mark, target: t });
  return t;
}

/** A peer as its entries build it up, in entry key order. */
interface PeerAcc {
  readonly allowed: Set<string>;
  endpoint: string | undefined;
  keepalive: number | undefined;
}

function buildTarget(desired: DesiredState, mark: OwnerMark): Target {
  const t: Target = {
    peers: new Map(),
    deviceAddresses: new Set(),
    veths: new Map(),
    hostRoutes: new Map(),
    hostProxies: new Set(),
    workloads: new Map(),
    knownNetns: new Map(),
  };
  const device: DeviceSpec | undefined = desired.device;
  const mtu = device?.mtu ?? 1420;
  const peers = new Map<string, PeerAcc>();
  // Sorted, so when two entries want the same prefix the outcome does not depend on insertion order.
  for (const key of Object.keys(desired.entries).sort()) {
    const e = desired.entries[key];
    if (e === undefined) continue;
    switch (e.kind) {
      case 'tunnel': {
        if (device === undefined) break;
        const f = factsOf(e);
        let p = peers.get(e.peerPublicKey);
        if (p === undefined) {
          p = { allowed: new Set(), endpoint: undefined, keepalive: undefined };
          peers.set(e.peerPublicKey, p);
        }
        for (const pre of f.prefixes) p.allowed.add(pre);
        // The first entry (in key order) with an endpoint gives it, the first with a keepalive other than 0 gives that.
        p.endpoint ??= e.endpoint;
        if (p.keepalive === undefined && e.persistentKeepalive !== 0) p.keepalive = e.persistentKeepalive;
        for (const pre of f.prefixes) {
          const k = routeKey(mainTable, pre);
          if (!t.hostRoutes.has(k)) t.hostRoutes.set(k, { dev: device.name });
        }
        break;
      }
      case 'host':
        for (const a of factsOf(e).addresses) t.deviceAddresses.add(a);
        break;
      case 'netns': {
        const f = factsOf(e);
        const name = linkNameOf(mark, key, e);
        const nk = f.netnsKey;
        t.knownNetns.set(nk, e.netns);
        t.veths.set(name, { name, ifName: e.ifName, netns: e.netns, mtu });
        let w = t.workloads.get(nk);
        if (w === undefined) {
          w = { netns: e.netns, addresses: new Map(), routes: new Map(), vethOf: new Map() };
          t.workloads.set(nk, w);
        }
        w.vethOf.set(e.ifName, name);
        w.addresses.set(e.ifName, new Set(f.addresses));
        for (const k of f.hostRouteKeys) if (!t.hostRoutes.has(k)) t.hostRoutes.set(k, { dev: name });
        for (const r of f.routes) {
          if (w.routes.has(r.key)) continue;
          w.routes.set(r.key, r.want);
          if (r.proxy !== undefined) t.hostProxies.add(`${r.proxy} ${name}`);
        }
        break;
      }
    }
  }
  for (const [publicKey, p] of peers) {
    t.peers.set(publicKey, {
      publicKey,
      allowedIps: [...p.allowed].sort(),
      ...(p.endpoint === undefined ? {} : { endpoint: p.endpoint }),
      ...(p.keepalive === undefined ? {} : { persistentKeepalive: p.keepalive }),
    });
  }
  return t;
}

/** What target() takes from one entry, canonical; entries are immutable, so it is derived once per entry object. */
export interface EntryFacts {
  /** tunnel: remote prefixes; */
  readonly prefixes: readonly string[];
  /** host and netns: addresses. */
  readonly addresses: readonly string[];
  /** netns: */
  readonly netnsKey: string;
  readonly hostRouteKeys: readonly string[];
  readonly routes: readonly {
    readonly key: string;
    readonly want: RouteWant;
    /** For a host route: the address the host end answers ARP for. */
    readonly proxy?: string;
  }[];
}

const facts = new WeakMap<DesiredEntry, EntryFacts>();

export function factsOf(e: DesiredEntry): EntryFacts {
  const known = facts.get(e);
  if (known !== undefined) return known;
  let f: EntryFacts;
  switch (e.kind) {
    case 'tunnel':
      f = {
        prefixes: e.remotePrefixes.map(canonicalPrefix),
        addresses: [],
        netnsKey: '',
        hostRouteKeys: [],
        routes: [],
      };
      break;
    case 'host':
      f = {
        prefixes: [],
        addresses: e.addresses.map(canonicalAddress),
        netnsKey: '',
        hostRouteKeys: [],
        routes: [],
      };
      break;
    case 'netns': {
      const routes = e.routes.map(canonicalPrefix);
      const gateway = routes.find(isHostPrefix);
      f = {
        prefixes: [],
        addresses: e.addresses.map(canonicalAddress),
        netnsKey: netnsKey(e.netns),
        hostRouteKeys: e.addresses.map((a) => routeKey(mainTable, hostPrefix(a))),
        routes: routes.map((r) =>
          isHostPrefix(r)
            ? { key: routeKey(mainTable, r), want: { dev: e.ifName }, proxy: addressOf(r) }
            : {
                key: routeKey(mainTable, r),
                want:
                  gateway === undefined
                    ? { dev: e.ifName }
                    : { dev: e.ifName, gateway: addressOf(gateway), onlink: true },
              },
        ),
      };
      break;
    }
  }
  facts.set(e, f);
  return f;
}

/** The veth name of a netns entry under its key (a hash of the key: derived once per entry object and key). */
const linkNames = new WeakMap<
  DesiredEntry,
  { readonly key: string; readonly prefix: string; readonly name: string }
>();

export function linkNameOf(mark: OwnerMark, key: string, e: DesiredEntry): string {
  const known = linkNames.get(e);
  if (known?.key === key && known.prefix === mark.prefix) return known.name;
  const name = ownedLinkName(mark, key);
  linkNames.set(e, { key, prefix: mark.prefix, name });
  return name;
}

// ---- helpers

/** The device's key, derived once (every plan looks at it; a derivation is two key imports). */
let lastDeviceKey: { readonly privateKey: string; readonly publicKey: string } | undefined;

function devicePublicKey(privateKey: string): string {
  if (lastDeviceKey?.privateKey !== privateKey)
    lastDeviceKey = { privateKey, publicKey: publicKeyOf(privateKey) };
  return lastDeviceKey.publicKey;
}

function withoutEndpoint(p: PeerConfig): PeerConfig {
  return {
    publicKey: p.publicKey,
    allowedIps: p.allowedIps,
    ...(p.persistentKeepalive === undefined ? {} : { persistentKeepalive: p.persistentKeepalive }),
  };
}

function samePeer(want: PeerConfig, have: PeerState | undefined): boolean {
  if (have === undefined) return false;
  const a = [...want.allowedIps].sort().join(',');
  const b = have.allowedIps.map(canonicalPrefix).sort().join(',');
  return (
    a === b &&
    (want.persistentKeepalive ?? 0) === have.persistentKeepalive &&
    (want.endpoint === undefined || want.endpoint === have.endpoint)
  );
}

/** Addresses on one link, canonical, without IPv6 link-local ones (the kernel makes those). */
function addressesOn(view: NetnsView, dev: string): readonly string[] {
  return indexOf(view).addresses.get(dev) ?? [];
}

/** A netns view by name: its links, and each link's addresses as addressesOn gives them (in view order). */
interface ViewIndex {
  readonly links: ReadonlyMap<string, Link>;
  readonly addresses: ReadonlyMap<string, readonly string[]>;
}

/** Per view object, made once: a plan looks up every wanted link and address in it. */
const indexes = new WeakMap<NetnsView, ViewIndex>();

function indexOf(view: NetnsView): ViewIndex {
  const known = indexes.get(view);
  if (known !== undefined) return known;
  const links = new Map<string, Link>();
  // The first of a name, as a search of the list would find it.
  for (const l of view.links) if (!links.has(l.name)) links.set(l.name, l);
  const addresses = new Map<string, string[]>();
  for (const a of view.addresses) {
    if (a.cidr.toLowerCase().startsWith('fe80:')) continue;
    const list = addresses.get(a.dev);
    if (list === undefined) addresses.set(a.dev, [canonicalAddress(a.cidr)]);
    else list.push(canonicalAddress(a.cidr));
  }
  const index = { links, addresses };
  indexes.set(view, index);
  return index;
}

export function routeKey(table: string, dst: string): string {
  return `${table}|${dst}`;
}

function keyOf(r: Route): string {
  const dst = r.dst === 'default' ? r.dst : canonicalPrefix(r.dst);
  return routeKey(r.table ?? mainTable, dst);
}

function routeWords(verb: string, dst: string, r: RouteWant, proto: string): string[] {
  return [
    'route',
    verb,
    dst,
    ...(r.gateway === undefined ? [] : ['via', r.gateway]),
    'dev',
    r.dev,
    'proto',
    proto,
    ...(r.onlink === true ? ['onlink'] : []),
  ];
}

function routeChanges(
  b: Batches,
  where: Where,
  have: readonly Route[],
  want: Map<string, RouteWant>,
  proto: string,
): void {
  const byKey = new Map(have.map((r) => [keyOf(r), r]));
  for (const [k, r] of want) {
    const dst = k.slice(k.indexOf('|') + 1);
    const cur = byKey.get(k);
    if (cur === undefined) b.add(where, 'routes', routeWords('add', dst, r, proto));
    else if (cur.dev !== r.dev || (cur.gateway ?? '') !== (r.gateway ?? ''))
      b.add(where, 'routes', routeWords('replace', dst, r, proto));
  }
}

function routeRemovals(
  b: Batches,
  where: Where,
  have: readonly Route[],
  want: Map<string, RouteWant>,
  proto: string,
): void {
  for (const r of have) {
    const k = keyOf(r);
    if (want.has(k)) continue;
    const table = r.table ?? mainTable;
    b.add(where, 'remove-routes', [
      'route',
      'del',
      k.slice(k.indexOf('|') + 1),
      ...(r.dev === undefined ? [] : ['dev', r.dev]),
      ...(table === mainTable ? [] : ['table', table]),
      'proto',
      proto,
    ]);
  }
}

function linkNetnsArg(ref: NetnsRef): string {
  switch (ref.kind) {
    case 'named':
      return ref.name;
    case 'pid':
      return String(ref.pid);
    case 'path':
      return ref.path;
  }
}

function refFromKey(key: string): NetnsRef | undefined {
  const named = /^\/var\/run\/netns\/([^/]+)$/.exec(key);
  if (named?.[1] !== undefined) return { kind: 'named', name: named[1] };
  const pid = /^\/proc\/(\d+)\/ns\/net$/.exec(key);
  if (pid?.[1] !== undefined) return { kind: 'pid', pid: Number(pid[1]) };
  return undefined;
}

const stageOrder: readonly BatchStage[] = [
  'links',
  'addresses',
  'proxies',
  'routes',
  'remove-routes',
  'remove-proxies',
  'remove-addresses',
  'remove-links',
];

/** `ip -batch` commands grouped by stage, then by netns (host first, workloads in key order). */
class Batches {
  readonly #byStage = new Map<BatchStage, Map<string, { where: Where; commands: string[][] }>>();

  add(where: Where, stage: BatchStage, words: string[]): void {
    const stageMap = this.#byStage.get(stage) ?? new Map<string, { where: Where; commands: string[][] }>();
    this.#byStage.set(stage, stageMap);
    const k = where.kind === 'host' ? '' : netnsKey(where.netns);
    const entry = stageMap.get(k) ?? { where, commands: [] };
    stageMap.set(k, entry);
    entry.commands.push(words);
  }

  ops(): ForwarderOp[] {
    const out: ForwarderOp[] = [];
    for (const stage of stageOrder) {
      const m = this.#byStage.get(stage);
      if (m === undefined) continue;
      for (const k of [...m.keys()].sort()) {
        const e = m.get(k);
        if (e !== undefined && e.commands.length > 0)
          out.push({ op: 'ip-batch', where: e.where, stage, commands: e.commands });
      }
    }
    return out;
  }
}
