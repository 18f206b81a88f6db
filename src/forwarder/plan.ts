import type { NetnsRef } from '../host/index.js';
import type { Address, Link, Route } from '../host/ip/index.js';
import type { DeviceState, PeerConfig, PeerState } from '../host/wireguard/index.js';
import { publicKeyOf } from '../host/wireguard/index.js';
import { addressOf, canonicalAddress, canonicalPrefix, hostPrefix, isHostPrefix } from './cidr.js';
import type { DesiredState, DeviceSpec } from './desired-state.js';
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

  // 1. The device, then its peers.
  const dev = desired.device;
  const curDev = dev === undefined ? undefined : current.devices[dev.name];
  let curPeers: readonly PeerState[] = [];
  let curDevAddresses: readonly string[] = [];
  if (dev !== undefined) {
    const link = host.links.find((l) => l.name === dev.name);
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
    for (const p of t.peers.values()) {
      const have = curPeers.find((c) => c.publicKey === p.publicKey);
      const roamed = have !== undefined && p.endpoint !== undefined && p.endpoint === declared[p.publicKey];
      const want: PeerConfig = roamed ? withoutEndpoint(p) : p;
      if (!samePeer(want, have)) changed.push(want);
    }
    if (changed.length > 0) ops.push({ op: 'peers-set', device: dev.name, peers: changed });
  }

  // 2. Links: veth pairs into workload netns, host end up first.
  const freshVeths = new Set<string>();
  for (const v of t.veths.values()) {
    const hostLink = host.links.find((l) => l.name === v.name);
    const wl = current.workloads[netnsKey(v.netns)] ?? emptyNetnsView;
    const wlLink = wl.links.find((l) => l.name === v.ifName);
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
    for (const a of t.deviceAddresses) {
      if (!curDevAddresses.includes(a))
        batches.add(onHost, 'addresses', ['addr', 'replace', a, 'dev', dev.name]);
    }
  }
  for (const [key, w] of t.workloads) {
    const view = current.workloads[key] ?? emptyNetnsView;
    for (const [ifName, addrs] of w.addresses) {
      const vethName = w.vethOf.get(ifName) ?? '';
      const have = freshVeths.has(vethName) ? [] : addressesOn(view, ifName);
      for (const a of addrs) {
        if (!have.includes(a))
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
    for (const a of curDevAddresses) {
      if (!t.deviceAddresses.has(a))
        batches.add(onHost, 'remove-addresses', ['addr', 'del', a, 'dev', dev.name]);
    }
  }
  for (const [key, w] of t.workloads) {
    const view = current.workloads[key] ?? emptyNetnsView;
    for (const [ifName, addrs] of w.addresses) {
      if (freshVeths.has(w.vethOf.get(ifName) ?? '')) continue;
      for (const a of addressesOn(view, ifName)) {
        if (!addrs.has(a))
          batches.add({ kind: 'workload', netns: w.netns }, 'remove-addresses', [
            'addr',
            'del',
            a,
            'dev',
            ifName,
          ]);
      }
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

const mainTable = 'main';

/**
 * What the host must look like for `desired`, as one string: two desired states with the same key
 * make the same plan against the same host (entries that only repeat what another entry already
 * asks for — a second connection to the same service address — change nothing). Holds the device's
 * private key: compare it, never log it.
 */
export function targetKey(desired: DesiredState, mark: OwnerMark): string {
  const t = target(desired, mark);
  const sorted = <V>(m: Map<string, V>): [string, V][] => [...m].sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([
    desired.device ?? null,
    sorted(t.peers),
    [...t.deviceAddresses].sort(),
    sorted(t.veths),
    sorted(t.hostRoutes),
    [...t.hostProxies].sort(),
    sorted(t.workloads).map(([k, w]) => [
      k,
      w.netns,
      sorted(new Map([...w.addresses].map(([i, a]) => [i, [...a].sort()]))),
      sorted(w.routes),
      sorted(w.vethOf),
    ]),
  ]);
}

/**
 * The host as a successful apply of `desired` leaves it, as far as plan() looks: the device with
 * its peers and addresses, the veth pairs up with their addresses, our routes and proxy entries —
 * so plan(assumedHost(a), b) gives the ops from a to b without reading the host, and
 * plan(assumedHost(a), a) gives none. Only for the forwarder's own changes one after another: it
 * knows nothing of what changed behind its back (drift repair and a failed op read the real host).
 */
export function assumedHost(desired: DesiredState, mark: OwnerMark): HostState {
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

function target(desired: DesiredState, mark: OwnerMark): Target {
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
  // Sorted, so when two entries want the same prefix the outcome does not depend on insertion order.
  for (const key of Object.keys(desired.entries).sort()) {
    const e = desired.entries[key];
    if (e === undefined) continue;
    switch (e.kind) {
      case 'tunnel': {
        if (device === undefined) break;
        const prefixes = e.remotePrefixes.map(canonicalPrefix);
        const p = t.peers.get(e.peerPublicKey);
        const allowed = [...new Set([...(p?.allowedIps ?? []), ...prefixes])].sort();
        const endpoint = p?.endpoint ?? e.endpoint;
        const keepalive = p?.persistentKeepalive ?? e.persistentKeepalive;
        t.peers.set(e.peerPublicKey, {
          publicKey: e.peerPublicKey,
          allowedIps: allowed,
          ...(endpoint === undefined ? {} : { endpoint }),
          ...(keepalive === undefined || keepalive === 0 ? {} : { persistentKeepalive: keepalive }),
        });
        for (const pre of prefixes)
          if (!t.hostRoutes.has(routeKey(mainTable, pre)))
            t.hostRoutes.set(routeKey(mainTable, pre), { dev: device.name });
        break;
      }
      case 'host':
        for (const a of e.addresses) t.deviceAddresses.add(canonicalAddress(a));
        break;
      case 'netns': {
        const name = ownedLinkName(mark, key);
        const nk = netnsKey(e.netns);
        t.knownNetns.set(nk, e.netns);
        t.veths.set(name, { name, ifName: e.ifName, netns: e.netns, mtu });
        const w = t.workloads.get(nk) ?? {
          netns: e.netns,
          addresses: new Map(),
          routes: new Map(),
          vethOf: new Map(),
        };
        t.workloads.set(nk, w);
        w.vethOf.set(e.ifName, name);
        w.addresses.set(e.ifName, new Set(e.addresses.map(canonicalAddress)));
        for (const a of e.addresses) {
          const k = routeKey(mainTable, hostPrefix(a));
          if (!t.hostRoutes.has(k)) t.hostRoutes.set(k, { dev: name });
        }
        const routes = e.routes.map(canonicalPrefix);
        const gateway = routes.find(isHostPrefix);
        for (const r of routes) {
          const k = routeKey(mainTable, r);
          if (w.routes.has(k)) continue;
          if (isHostPrefix(r) || gateway === undefined) w.routes.set(k, { dev: e.ifName });
          else w.routes.set(k, { dev: e.ifName, gateway: addressOf(gateway), onlink: true });
          if (isHostPrefix(r)) t.hostProxies.add(`${addressOf(r)} ${name}`);
        }
        break;
      }
    }
  }
  return t;
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
function addressesOn(view: NetnsView, dev: string): string[] {
  return view.addresses
    .filter((a) => a.dev === dev && !a.cidr.toLowerCase().startsWith('fe80:'))
    .map((a) => canonicalAddress(a.cidr));
}

function routeKey(table: string, dst: string): string {
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
