// The data-plane test bed: N simulated hosts on one machine, each a network namespace, cabled with
// veth pairs to a bridge that lives in a namespace of its own, so nothing touches the root
// namespace's interfaces. Used by the e2e tests, the benchmarks, scripts/testbed.ts and the local
// mesh (scripts/lib/local-mesh.ts: `npm run demo`); test/helpers/testbed.ts re-exports it.
//
//   <prefix>-br   bridge `br0`, one port `h<i>` per host
//   <prefix>-h<i> `eth0` (underlay <subnet>.<i>/24), `lo` up, IPv4 forwarding on
//
// wireguard-go puts its UAPI socket in /var/run/wireguard, shared by every namespace, so each
// host's WireGuard device name carries the prefix and the host number (`<prefix>-h<i>-wg`), and
// `down` finds every leftover — also after the process that made the bed was killed — by prefix.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { ProcessRunner } from '../../src/host/command-runner.js';
import type { CommandRunner } from '../../src/host/command-runner.js';
import { processExists, signalProcess } from '../../src/host/detached-process.js';
import { Ip } from '../../src/host/ip/index.js';
import type { Address } from '../../src/host/ip/index.js';
import { Netns } from '../../src/host/netns.js';
import {
  defaultSocketDir,
  listWireGuardGoProcesses,
  parseWireGuardGoArgv,
} from '../../src/host/wireguard/index.js';

export interface TestbedOptions {
  /** 1–8 lowercase letters/digits, starting with a letter; every name of the bed starts with it. */
  readonly prefix: string;
  readonly hosts: number;
  /** First three octets of the underlay /24; default 10.123.0. */
  readonly subnet?: string;
  readonly mtu?: number;
  readonly runner?: CommandRunner;
}

export interface TestbedHost {
  readonly index: number;
  /** Network namespace name. */
  readonly netns: string;
  /** Underlay interface inside the host namespace. */
  readonly dev: 'eth0';
  readonly underlayIp: string;
  readonly underlayCidr: string;
  /** A WireGuard device name unique on the machine, for this host. */
  readonly wgDevice: string;
}

export interface Testbed {
  readonly prefix: string;
  readonly bridgeNetns: string;
  readonly hosts: readonly TestbedHost[];
}

export interface TestbedDownReport {
  readonly killedProcesses: readonly number[];
  readonly removedSockets: readonly string[];
  readonly removedNetns: readonly string[];
}

export interface TestbedStatus {
  readonly prefix: string;
  readonly netns: readonly string[];
  readonly addresses: Readonly<Record<string, readonly Address[]>>;
  readonly wireguardGo: readonly { pid: number; device: string }[];
  readonly sockets: readonly string[];
}

export function checkPrefix(prefix: string): string {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix)) {
    throw new Error(
      `test bed prefix ${JSON.stringify(prefix)}: use 1–8 lowercase letters or digits, starting with a letter`,
    );
  }
  return prefix;
}

export function testbedLayout(o: TestbedOptions): Testbed {
  const prefix = checkPrefix(o.prefix);
  if (!Number.isInteger(o.hosts) || o.hosts < 1 || o.hosts > 99) throw new Error('hosts: 1..99');
  const subnet = o.subnet ?? '10.123.0';
  return {
    prefix,
    bridgeNetns: `${prefix}-br`,
    hosts: Array.from({ length: o.hosts }, (_, i) => {
      const index = i + 1;
      const underlayIp = `${subnet}.${index}`;
      return {
        index,
        netns: `${prefix}-h${index}`,
        dev: 'eth0' as const,
        underlayIp,
        underlayCidr: `${underlayIp}/24`,
        wgDevice: `${prefix}-h${index}-wg`,
      };
    }),
  };
}

/** Creates the bed (after removing any leftover with the same prefix). On failure nothing is left. */
export async function testbedUp(o: TestbedOptions): Promise<Testbed> {
  const runner = o.runner ?? new ProcessRunner();
  const bed = testbedLayout(o);
  await testbedDown(bed.prefix, { runner });
  const netns = new Netns(runner);
  try {
    await netns.create(bed.bridgeNetns);
    const br = new Ip(runner, { netns: bed.bridgeNetns });
    await br.addBridge('br0');
    await br.setUp('br0');
    await br.setUp('lo');
    for (const h of bed.hosts) {
      await netns.create(h.netns);
      const ip = new Ip(runner, { netns: h.netns });
      await ip.setUp('lo');
      await br.addVeth(`h${h.index}`, h.dev, {
        peerNetns: h.netns,
        ...(o.mtu === undefined ? {} : { mtu: o.mtu }),
      });
      await br.setLink(`h${h.index}`, { master: 'br0', up: true });
      await ip.addAddress(h.dev, h.underlayCidr);
      await ip.setUp(h.dev);
      // Per-netns sysctl, written without a shell or procps: tee inside the namespace.
      await runner.runChecked(['tee', '/proc/sys/net/ipv4/ip_forward'], { netns: h.netns, input: '1\n' });
    }
    return bed;
  } catch (e: unknown) {
    await testbedDown(bed.prefix, { runner });
    throw e;
  }
}

/**
 * Removes everything carrying the prefix: wireguard-go processes of `<prefix>-…` devices and their
 * sockets, every process still inside one of the bed's namespaces, and the namespaces (which takes
 * their veths and bridge with them). Idempotent; safe after a crash.
 */
export async function testbedDown(
  prefix: string,
  o: { runner?: CommandRunner; socketDir?: string } = {},
): Promise<TestbedDownReport> {
  checkPrefix(prefix);
  const runner = o.runner ?? new ProcessRunner();
  const socketDir = o.socketDir ?? defaultSocketDir;
  const netns = new Netns(runner);
  const ours = (await netns.list()).filter((n) => n.startsWith(`${prefix}-`));
  const pids = new Set<number>();
  for (const p of await listWireGuardGoProcesses()) if (p.device.startsWith(`${prefix}-`)) pids.add(p.pid);
  for (const n of ours) {
    const r = await runner.run(['ip', 'netns', 'pids', n]);
    for (const line of r.stdout.split('\n')) if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
  }
  pids.delete(process.pid);
  await stop([...pids]);
  const removedSockets: string[] = [];
  for (const f of await readdir(socketDir).catch(() => [] as string[])) {
    if (f.startsWith(`${prefix}-`) && f.endsWith('.sock')) {
      await rm(`${socketDir}/${f}`, { force: true });
      removedSockets.push(f);
    }
  }
  for (const n of ours) await netns.delete(n);
  const left = (await netns.list()).filter((n) => n.startsWith(`${prefix}-`));
  if (left.length > 0) throw new Error(`test bed ${prefix}: namespaces left after down: ${left.join(', ')}`);
  return { killedProcesses: [...pids], removedSockets, removedNetns: ours };
}

export async function testbedStatus(
  prefix: string,
  o: { runner?: CommandRunner; socketDir?: string } = {},
): Promise<TestbedStatus> {
  checkPrefix(prefix);
  const runner = o.runner ?? new ProcessRunner();
  const ns = (await new Netns(runner).list()).filter((n) => n.startsWith(`${prefix}-`)).sort();
  const addresses: Record<string, Address[]> = {};
  for (const n of ns)
    addresses[n] = (await new Ip(runner, { netns: n }).addresses()).filter((a) => a.dev !== 'lo');
  const wireguardGo = (await listWireGuardGoProcesses()).filter((p) => p.device.startsWith(`${prefix}-`));
  const sockets = (await readdir(o.socketDir ?? defaultSocketDir).catch(() => [] as string[])).filter((f) =>
    f.startsWith(`${prefix}-`),
  );
  return { prefix, netns: ns, addresses, wireguardGo, sockets };
}

/** SIGTERM, up to 2 s, then SIGKILL and up to 2 s more; by pid, one by one. */
async function stop(pids: readonly number[]): Promise<void> {
  for (const pid of pids) signalProcess(pid, 'SIGTERM');
  if (await waitGone(pids, 2_000)) return;
  for (const pid of pids) signalProcess(pid, 'SIGKILL');
  await waitGone(pids, 2_000);
}

async function waitGone(pids: readonly number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pids.some(alive)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** A zombie (exited, not yet reaped by its parent) holds nothing: it counts as gone. */
function alive(pid: number): boolean {
  if (!processExists(pid)) return false;
  try {
    // /proc/<pid>/stat field 3 is the state; Z is a zombie.
    return !/^\d+ \(.*\) Z /.test(readStat(pid));
  } catch {
    return false;
  }
}

function readStat(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, 'utf8');
}

/**
 * The last resort of a process that is exiting (`process.on('exit')`, where nothing async runs):
 * SIGKILL every process inside the bed's namespaces and every wireguard-go of its devices, remove
 * their UAPI sockets and the namespaces. Best effort and quiet; `testbedDown` is the normal way.
 */
export function testbedDownSync(prefix: string, socketDir = defaultSocketDir): void {
  checkPrefix(prefix);
  const run = (argv: string[]): string => {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 5_000 });
    return typeof r.stdout === 'string' ? r.stdout : '';
  };
  const ours = run(['ip', 'netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
  const pids = new Set<number>();
  for (const n of ours)
    for (const line of run(['ip', 'netns', 'pids', n]).split('\n'))
      if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
  for (const dir of readdirSyncSafe('/proc')) {
    if (!/^\d+$/.test(dir)) continue;
    try {
      const argv = readFileSync(`/proc/${dir}/cmdline`, 'utf8').split('\0');
      if (parseWireGuardGoArgv(argv.filter((a) => a !== ''))?.startsWith(`${prefix}-`)) pids.add(Number(dir));
    } catch {
      // gone meanwhile
    }
  }
  pids.delete(process.pid);
  for (const pid of pids) signalProcess(pid, 'SIGKILL');
  for (const f of readdirSyncSafe(socketDir))
    if (f.startsWith(`${prefix}-`) && f.endsWith('.sock')) rmSync(`${socketDir}/${f}`, { force: true });
  for (const n of ours) run(['ip', 'netns', 'delete', n]);
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
