// The paths a data-plane benchmark measures between two test-bed hosts, each brought up in its own
// overlay subnet so that all of them can exist side by side and be measured interleaved:
//   veth        the underlay itself (the limit)
//   hand        wireguard-go configured with `wg` and `ip`, the way a person would
//   agent       wireguard-go programmed through our WireGuard port (UserspaceWireGuard)
//   nebula      Nebula with a throwaway CA, host 1 as lighthouse, a static host map
// Host 1 (`a`) is always the iperf3 server and ping target; host 2 (`b`) the client.
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Forwarder, emptyDesiredState, entryKey } from '../../src/forwarder/index.js';
import type { DesiredState } from '../../src/forwarder/index.js';
import type { CommandRunner } from '../../src/host/command-runner.js';
import { Ip } from '../../src/host/ip/index.js';
import { defaultUdpBufferBytes } from '../../src/host/socket-buffers/index.js';
import {
  createWireGuard,
  defaultSocketDir,
  generatePrivateKey,
  listWireGuardGoProcesses,
  publicKeyOf,
} from '../../src/host/wireguard/index.js';
import type { WireGuard } from '../../src/host/wireguard/index.js';
import { withKeyFile } from '../../src/host/wireguard/key-file.js';
import type { TestbedHost } from '../../test/helpers/testbed.js';
import { withNetnsSysctls } from './netns-counters.js';
import type { BenchProcesses } from './processes.js';
import { sleep } from './processes.js';

const forceSocketBuffers = fileURLToPath(new URL('./force-socket-buffers.py', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface BenchTunnel {
  readonly id: string;
  readonly label: string;
  /** Host 1's address over this path. */
  readonly serverIp: string;
  /** The tunnel's interface on each host (for drop counters), or the underlay for veth. */
  readonly devices: readonly { readonly netns: string; readonly dev: string }[];
  /** The processes that carry this path's packets (none for veth and kernel paths). */
  readonly pids: readonly number[];
  /** What the knobs of this row are, for the report. */
  readonly settings: string;
  /** The tunnel's UDP listen port on both hosts (none for veth). */
  readonly udpPort?: number;
  close(): Promise<void>;
}

export interface TunnelContext {
  readonly runner: CommandRunner;
  readonly procs: BenchProcesses;
  readonly a: TestbedHost;
  readonly b: TestbedHost;
  /** A private directory (0700) for keys, configs and logs. */
  readonly workDir: string;
}

/** Settings of a WireGuard row that the agent (or a person) can choose. */
export interface WgKnobs {
  /** Tunnel interface MTU; wireguard-go's default is 1420. */
  readonly mtu?: number;
  /** Extra environment for wireguard-go (GOMAXPROCS, GOGC …). */
  readonly env?: Readonly<Record<string, string>>;
  /** TUN transmit queue length (`ip link set … txqueuelen`). */
  readonly txqueuelen?: number;
  /** CPU list per host for `taskset -a -p -c` (index 0: host 1, 1: host 2). */
  readonly cpus?: readonly [string, string];
  /**
   * Bytes of SO_RCVBUF/SO_SNDBUF forced onto wireguard-go's UDP sockets after start (benchmark-only
   * probe, force-socket-buffers.py): what a wireguard-go that asks for big buffers itself would get.
   */
  readonly udpBuffer?: number;
  /** Per-netns sysctls in force while the device and its socket are made (only per-netns keys are writable). */
  readonly socketSysctls?: Readonly<Record<string, string>>;
  /**
   * Rows made by the agent (port, forwarder): the UDP buffer size UserspaceWireGuard gives
   * wireguard-go itself (udpBufferBytes; absent: its default, 4 MiB; 0: off).
   */
  readonly agentUdpBuffer?: number;
  /** Run every thread of wireguard-go with SCHED_BATCH (`chrt -b -a -p 0`): no wakeup preemption. */
  readonly schedBatch?: boolean;
  /** Rows made by the agent: UserspaceWireGuard's own SCHED_BATCH (its schedBatch; absent: its default, on). */
  readonly agentSchedBatch?: boolean;
}

export interface WgTunnelOptions extends WgKnobs {
  /** kernel WireGuard (no process to measure; the knobs that act on wireguard-go do nothing) or wireguard-go. */
  readonly backend: 'kernel' | 'userspace';
  readonly id: string;
  readonly label: string;
  /** Device name suffix, unique among the rows: `<host wgDevice prefix>-<suffix>`, ≤ 15 chars in all. */
  readonly suffix: string;
  /** Hand row only: start wireguard-go in a session of its own, as the agent does. */
  readonly detached?: boolean;
  /** First three octets of the overlay /24. */
  readonly subnet: string;
  readonly port: number;
}

export function vethPath(ctx: TunnelContext): BenchTunnel {
  return {
    id: 'veth',
    label: 'plain veth (limit)',
    serverIp: ctx.a.underlayIp,
    devices: [
      { netns: ctx.a.netns, dev: ctx.a.dev },
      { netns: ctx.b.netns, dev: ctx.b.dev },
    ],
    pids: [],
    settings: 'underlay veth via bridge, MTU 1500',
    close: () => Promise.resolve(),
  };
}

function deviceName(host: TestbedHost, suffix: string): string {
  // `<prefix>-h<i>-wg` → `<prefix>-h<i>-<suffix>`; unique on the machine (shared /var/run/wireguard).
  const name = `${host.wgDevice.slice(0, host.wgDevice.lastIndexOf('-'))}-${suffix}`;
  if (name.length > 15)
    throw new Error(`device name ${name} is longer than 15 characters: shorten the suffix`);
  return name;
}

/** Settings of a row made by the agent: the knobs and the agent's own UDP buffer sizing. */
function describeAgentKnobs(o: WgTunnelOptions): string {
  const bytes = o.agentUdpBuffer ?? defaultUdpBufferBytes;
  if (o.backend === 'kernel') return describeKnobs(o);
  return `${describeKnobs(o)}, agent UDP buffers ${bytes === 0 ? 'off' : `${bytes / 1024 / 1024} MiB`}, agent SCHED_BATCH ${o.agentSchedBatch === false ? 'off' : 'on'}`;
}

function describeKnobs(k: WgKnobs): string {
  const parts = [`MTU ${k.mtu ?? 1420}`];
  for (const [key, v] of Object.entries(k.env ?? {})) parts.push(`${key}=${v}`);
  if (k.txqueuelen !== undefined) parts.push(`txqueuelen ${k.txqueuelen}`);
  if (k.cpus !== undefined) parts.push(`cpus ${k.cpus.join('/')}`);
  if (k.udpBuffer !== undefined) parts.push(`UDP buffers ${k.udpBuffer}`);
  if (k.schedBatch === true) parts.push('SCHED_BATCH');
  for (const [key, v] of Object.entries(k.socketSysctls ?? {})) parts.push(`${key}=${v}`);
  return parts.join(', ');
}

async function afterStart(
  ctx: TunnelContext,
  k: WgKnobs,
  host: TestbedHost,
  dev: string,
  pid: number | undefined,
  i: 0 | 1,
): Promise<void> {
  if (k.txqueuelen !== undefined) {
    await ctx.runner.runChecked([
      'ip',
      '-n',
      host.netns,
      'link',
      'set',
      'dev',
      dev,
      'txqueuelen',
      String(k.txqueuelen),
    ]);
  }
  const cpus = k.cpus?.[i];
  if (k.schedBatch === true && pid !== undefined) {
    await ctx.runner.runChecked(['chrt', '-b', '-a', '-p', '0', String(pid)]);
  }
  if (cpus !== undefined && pid !== undefined) {
    await ctx.runner.runChecked(['taskset', '-a', '-p', '-c', cpus, String(pid)]);
  }
  if (k.udpBuffer !== undefined && pid !== undefined) {
    await ctx.runner.runChecked(['python3', forceSocketBuffers, String(pid), String(k.udpBuffer)]);
  }
}

function sysctlsAround<T>(ctx: TunnelContext, k: WgKnobs, netns: string, fn: () => Promise<T>): Promise<T> {
  return k.socketSysctls === undefined ? fn() : withNetnsSysctls(ctx.runner, netns, k.socketSysctls, fn);
}

/** wireguard-go brought up with `wireguard-go`, `wg set` and `ip`, as the WireGuard docs show. */
export async function handWireGuard(ctx: TunnelContext, o: WgTunnelOptions): Promise<BenchTunnel> {
  const hosts = [ctx.a, ctx.b] as const;
  const keys = hosts.map(() => generatePrivateKey());
  const devs = hosts.map((h) => deviceName(h, o.suffix));
  const pids: number[] = [];
  const tunnel: BenchTunnel = {
    id: o.id,
    label: o.label,
    serverIp: `${o.subnet}.${ctx.a.index}`,
    devices: hosts.map((h, i) => ({ netns: h.netns, dev: devs[i]! })),
    pids,
    settings: describeKnobs(o),
    udpPort: o.port,
    close: async () => {
      for (const [i, h] of hosts.entries()) {
        await ctx.runner.run(['ip', '-n', h.netns, 'link', 'del', 'dev', devs[i]!]);
      }
      for (const pid of pids) await ctx.procs.stop(pid);
    },
  };
  try {
    for (const [i, h] of hosts.entries()) {
      const dev = devs[i]!;
      const pid = await sysctlsAround(ctx, o, h.netns, async () => {
        if (o.backend === 'kernel') {
          // No process: the kernel carries the packets.
          await ctx.runner.runChecked(['ip', '-n', h.netns, 'link', 'add', 'dev', dev, 'type', 'wireguard']);
          await withKeyFile(keys[i]!, (path) =>
            ctx.runner.runChecked(['wg', 'set', dev, 'listen-port', String(o.port), 'private-key', path], {
              netns: h.netns,
            }),
          );
          return undefined;
        }
        const p = ctx.procs.spawn(['wireguard-go', '-f', dev], {
          netns: h.netns,
          label: `wireguard-go-${dev}`,
          env: { ...stringEnv(process.env), ...(o.env ?? {}) },
          ...(o.detached === true ? { detached: true } : {}),
        });
        pids.push(p);
        await ctx.procs.waitFor(
          async () => (await ctx.runner.run(['wg', 'show', dev], { netns: h.netns })).code === 0,
          5_000,
          `wireguard-go ${dev} did not come up: read ${ctx.procs.logPath(`wireguard-go-${dev}`)}`,
        );
        await withKeyFile(keys[i]!, (path) =>
          ctx.runner.runChecked(['wg', 'set', dev, 'listen-port', String(o.port), 'private-key', path], {
            netns: h.netns,
          }),
        );
        return p;
      });
      await afterStart(ctx, o, h, dev, pid, i as 0 | 1);
      await ctx.runner.runChecked([
        'ip',
        '-n',
        h.netns,
        'addr',
        'add',
        `${o.subnet}.${h.index}/24`,
        'dev',
        dev,
      ]);
      await ctx.runner.runChecked([
        'ip',
        '-n',
        h.netns,
        'link',
        'set',
        'dev',
        dev,
        'mtu',
        String(o.mtu ?? 1420),
        'up',
      ]);
    }
    for (const [i, h] of hosts.entries()) {
      const peer = hosts[1 - i]!;
      await ctx.runner.runChecked(
        [
          'wg',
          'set',
          devs[i]!,
          'peer',
          publicKeyOf(keys[1 - i]!),
          'endpoint',
          `${peer.underlayIp}:${o.port}`,
          'allowed-ips',
          `${o.subnet}.${peer.index}/32`,
        ],
        { netns: h.netns },
      );
    }
    await waitForPath(ctx, tunnel);
    return tunnel;
  } catch (e: unknown) {
    await tunnel.close();
    throw e;
  }
}

/** Keys, device names and a WireGuard port per host, as the agent makes them (shared by the rows). */
async function agentPorts(
  ctx: TunnelContext,
  o: WgTunnelOptions,
): Promise<{
  hosts: readonly [TunnelContext['a'], TunnelContext['b']];
  keys: string[];
  devs: string[];
  ports: WireGuard[];
}> {
  const hosts = [ctx.a, ctx.b] as const;
  const keys = hosts.map(() => generatePrivateKey());
  const devs = hosts.map((h) => deviceName(h, o.suffix));
  const logDir = join(ctx.workDir, 'agent-logs');
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  // UserspaceWireGuard loads its native buffer helper from dist/native when run from the sources.
  if (o.backend === 'userspace' && o.agentUdpBuffer !== 0) {
    execFileSync(process.execPath, ['packaging/build-native.mjs'], { cwd: repoRoot, stdio: 'ignore' });
  }
  const ports: WireGuard[] = hosts.map((h) =>
    createWireGuard(o.backend, {
      runner: ctx.runner,
      netns: h.netns,
      socketDir: defaultSocketDir,
      logDir,
      env: { ...process.env, ...(o.env ?? {}) },
      ...(o.agentUdpBuffer === undefined ? {} : { udpBufferBytes: o.agentUdpBuffer }),
      ...(o.agentSchedBatch === undefined ? {} : { schedBatch: o.agentSchedBatch }),
    }),
  );
  return { hosts, keys, devs, ports };
}

/** wireguard-go programmed through the agent's WireGuard port (src/host/wireguard). */
export async function agentWireGuard(ctx: TunnelContext, o: WgTunnelOptions): Promise<BenchTunnel> {
  const { hosts, keys, devs, ports } = await agentPorts(ctx, o);
  const pids: number[] = [];
  const tunnel: BenchTunnel = {
    id: o.id,
    label: o.label,
    serverIp: `${o.subnet}.${ctx.a.index}`,
    devices: hosts.map((h, i) => ({ netns: h.netns, dev: devs[i]! })),
    pids,
    settings: describeAgentKnobs(o),
    udpPort: o.port,
    close: async () => {
      for (const [i, wg] of ports.entries()) await wg.deleteDevice(devs[i]!);
      for (const pid of pids) await ctx.procs.stop(pid);
    },
  };
  try {
    for (const [i, h] of hosts.entries()) {
      const dev = devs[i]!;
      await sysctlsAround(ctx, o, h.netns, () =>
        ports[i]!.ensureDevice(dev, {
          privateKey: keys[i]!,
          listenPort: o.port,
          ...(o.mtu === undefined ? {} : { mtu: o.mtu }),
        }),
      );
      const pid = (await listWireGuardGoProcesses()).find((p) => p.device === dev)?.pid;
      if (pid === undefined && o.backend === 'userspace') {
        throw new Error(`no wireguard-go process for ${dev} after ensureDevice`);
      }
      if (pid !== undefined) {
        pids.push(pid);
        ctx.procs.adopt(pid);
      }
      await afterStart(ctx, o, h, dev, pid, i as 0 | 1);
      await new Ip(ctx.runner, { netns: h.netns }).addAddress(dev, `${o.subnet}.${h.index}/24`);
    }
    for (const [i, wg] of ports.entries()) {
      const peer = hosts[1 - i]!;
      await wg.configure(devs[i]!, {
        peers: [
          {
            publicKey: publicKeyOf(keys[1 - i]!),
            endpoint: `${peer.underlayIp}:${o.port}`,
            allowedIps: [`${o.subnet}.${peer.index}/32`],
          },
        ],
      });
    }
    await waitForPath(ctx, tunnel);
    return tunnel;
  } catch (e: unknown) {
    await tunnel.close();
    throw e;
  }
}

/**
 * wireguard-go (or kernel WireGuard) made by the forwarder: each host's Forwarder.apply() of a
 * desired state with the device, one tunnel entry (the peer, its /32 routed into the device) and a
 * host-local entry (the overlay address on the device), exactly as the agent does it.
 */
export async function forwarderWireGuard(ctx: TunnelContext, o: WgTunnelOptions): Promise<BenchTunnel> {
  const { hosts, keys, devs, ports } = await agentPorts(ctx, o);
  const forwarders = hosts.map(
    (h, i) =>
      new Forwarder({
        runner: ctx.runner,
        wireguard: ports[i]!,
        stateDir: join(ctx.workDir, `forwarder-${devs[i]!}`),
        netns: h.netns,
        // Each row is its own "agent" in the same host netns: a forwarder removes every route with
        // its mark that its desired state does not claim, so two rows sharing a mark would undo
        // each other's routes. One route protocol per row (from its port) keeps them apart.
        mark: { prefix: 'nb', proto: 200 + (o.port % 50) },
      }),
  );
  const pids: number[] = [];
  const tunnel: BenchTunnel = {
    id: o.id,
    label: o.label,
    serverIp: `${o.subnet}.${ctx.a.index}`,
    devices: hosts.map((h, i) => ({ netns: h.netns, dev: devs[i]! })),
    pids,
    settings: describeAgentKnobs(o),
    udpPort: o.port,
    close: async () => {
      for (const [i, f] of forwarders.entries()) {
        await f.apply(emptyDesiredState).catch(() => ports[i]!.deleteDevice(devs[i]!));
      }
      for (const pid of pids) await ctx.procs.stop(pid);
    },
  };
  try {
    for (const [i, h] of hosts.entries()) {
      const dev = devs[i]!;
      const peer = hosts[1 - i]!;
      const desired: DesiredState = {
        device: { name: dev, privateKey: keys[i]!, listenPort: o.port, mtu: o.mtu ?? 1420 },
        entries: {
          [entryKey('bench', 'tunnel')]: {
            kind: 'tunnel',
            peerPublicKey: publicKeyOf(keys[1 - i]!),
            endpoint: `${peer.underlayIp}:${o.port}`,
            remotePrefixes: [`${o.subnet}.${peer.index}/32`],
          },
          [entryKey('bench', 'local')]: { kind: 'host', addresses: [`${o.subnet}.${h.index}/32`] },
        },
      };
      await sysctlsAround(ctx, o, h.netns, () => forwarders[i]!.apply(desired));
      const pid = (await listWireGuardGoProcesses()).find((p) => p.device === dev)?.pid;
      if (pid === undefined && o.backend === 'userspace') {
        throw new Error(`no wireguard-go process for ${dev} after the forwarder's apply()`);
      }
      if (pid !== undefined) {
        pids.push(pid);
        ctx.procs.adopt(pid);
      }
      await afterStart(ctx, o, h, dev, pid, i as 0 | 1);
    }
    await waitForPath(ctx, tunnel);
    return tunnel;
  } catch (e: unknown) {
    await tunnel.close();
    throw e;
  }
}

export interface NebulaOptions {
  readonly id: string;
  readonly label: string;
  readonly suffix: string;
  readonly subnet: string;
  readonly port: number;
  /** Nebula's default tun MTU is 1300. */
  readonly mtu?: number;
  /** Socket buffer sizes Nebula asks for (listen.read_buffer / write_buffer); default: the system's. */
  readonly socketBuffer?: number;
  /** CPU list per host for `taskset -a -p -c`, as for WireGuard rows. */
  readonly cpus?: readonly [string, string];
  /** Start nebula in a session of its own (setsid), as a service would run. */
  readonly detached?: boolean;
}

/** Nebula 1.6: throwaway CA and host certs (nebula-cert), host 1 lighthouse, static host map. */
export async function nebula(ctx: TunnelContext, o: NebulaOptions): Promise<BenchTunnel> {
  const hosts = [ctx.a, ctx.b] as const;
  const dir = join(ctx.workDir, `nebula-${o.suffix}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const devs = hosts.map((h) => deviceName(h, o.suffix));
  const pids: number[] = [];
  const lighthouse = `${o.subnet}.${ctx.a.index}`;
  const tunnel: BenchTunnel = {
    id: o.id,
    label: o.label,
    serverIp: lighthouse,
    udpPort: o.port,
    devices: hosts.map((h, i) => ({ netns: h.netns, dev: devs[i]! })),
    pids,
    settings: [
      `MTU ${o.mtu ?? 1300}`,
      ...(o.socketBuffer === undefined ? [] : [`socket buffers ${o.socketBuffer}`]),
      ...(o.cpus === undefined ? [] : [`cpus ${o.cpus.join('/')}`]),
      ...(o.detached === true ? ['own session'] : []),
    ].join(', '),
    close: async () => {
      for (const pid of pids) await ctx.procs.stop(pid);
    },
  };
  const cert = (args: readonly string[]): Promise<unknown> =>
    ctx.runner.runChecked(['nebula-cert', ...args]).catch((e: unknown) => {
      throw new Error(
        `nebula-cert ${args[0] ?? ''} failed (install it: apt-get install nebula): ${String(e)}`,
      );
    });
  try {
    await cert([
      'ca',
      '-name',
      'nsm-bench',
      '-duration',
      '2h',
      '-out-crt',
      join(dir, 'ca.crt'),
      '-out-key',
      join(dir, 'ca.key'),
    ]);
    for (const [i, h] of hosts.entries()) {
      const name = `h${h.index}`;
      await cert([
        'sign',
        '-ca-crt',
        join(dir, 'ca.crt'),
        '-ca-key',
        join(dir, 'ca.key'),
        '-name',
        name,
        '-ip',
        `${o.subnet}.${h.index}/24`,
        '-out-crt',
        join(dir, `${name}.crt`),
        '-out-key',
        join(dir, `${name}.key`),
      ]);
      await chmod(join(dir, `${name}.key`), 0o600);
      const isLighthouse = i === 0;
      // YAML is a superset of JSON: the config is written as JSON.
      const config = {
        pki: { ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) },
        static_host_map: { [lighthouse]: [`${ctx.a.underlayIp}:${o.port}`] },
        lighthouse: { am_lighthouse: isLighthouse, interval: 60, hosts: isLighthouse ? [] : [lighthouse] },
        listen: {
          host: '0.0.0.0',
          port: o.port,
          ...(o.socketBuffer === undefined
            ? {}
            : { read_buffer: o.socketBuffer, write_buffer: o.socketBuffer }),
        },
        punchy: { punch: false },
        tun: {
          disabled: false,
          dev: devs[i],
          drop_local_broadcast: false,
          drop_multicast: false,
          mtu: o.mtu ?? 1300,
        },
        logging: { level: 'warning', format: 'text' },
        firewall: {
          outbound: [{ port: 'any', proto: 'any', host: 'any' }],
          inbound: [{ port: 'any', proto: 'any', host: 'any' }],
        },
      };
      const file = join(dir, `${name}.yml`);
      await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
      pids.push(
        ctx.procs.spawn(['nebula', '-config', file], {
          netns: h.netns,
          label: `nebula-${devs[i]!}`,
          ...(o.detached === true ? { detached: true } : {}),
        }),
      );
    }
    await waitForPath(ctx, tunnel);
    for (const [i, pid] of pids.entries()) {
      const cpus = o.cpus?.[i];
      if (cpus !== undefined) await ctx.runner.runChecked(['taskset', '-a', '-p', '-c', cpus, String(pid)]);
    }
    return tunnel;
  } catch (e: unknown) {
    await tunnel.close();
    throw e;
  }
}

/** Pings host 1 from host 2 until the path answers (handshakes done), at most 15 s. */
export async function waitForPath(ctx: TunnelContext, t: BenchTunnel): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await ctx.runner.run(['ping', '-n', '-c', '1', '-W', '1', t.serverIp], { netns: ctx.b.netns });
    if (r.code === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${t.label}: ${t.serverIp} does not answer from ${ctx.b.netns} after 15 s; read the logs in ${ctx.workDir}`,
      );
    }
    await sleep(100);
  }
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}
