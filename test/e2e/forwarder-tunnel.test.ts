// Root e2e (issue 4 acceptance): two simulated hosts, each with its own forwarder (in this process,
// commands in the host's netns). apply() brings up the WireGuard tunnel, a host-process local side
// (addresses on the device) and a netns workload (veth into a named netns); pings go both ways on
// both paths (KERNEL ↔ WIREGUARD ↔ KERNEL). A second apply() runs no mutating command. Removing
// everything leaves every netns as it was, and the machine as it was.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { Netns } from '../../src/host/netns.js';
import { generatePrivateKey, listWireGuardGoProcesses } from '../../src/host/wireguard/index.js';
import { emptyDesiredState } from '../../src/forwarder/index.js';
import { hostSnapshot, netnsSnapshot } from '../helpers/host-snapshot.js';
import type { HostSnapshot, NetnsSnapshot } from '../helpers/host-snapshot.js';
import { testbedDown, testbedUp } from '../helpers/testbed.js';
import type { Testbed } from '../helpers/testbed.js';
import { desiredFor, forwarderFor, hostAddr, podAddr, workloadNetns } from './forwarder-fixture.js';
import type { HostForwarder } from './forwarder-fixture.js';

const prefix = 'nsmfwdt';
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const keys = [generatePrivateKey(), generatePrivateKey()];

let before: HostSnapshot;
let bed: Testbed;
let tmp: string;
let beforeNetns: NetnsSnapshot[];
let fwds: HostForwarder[];
const allNetns = (): string[] => [
  ...bed.hosts.map((h) => h.netns),
  workloadNetns(prefix, 1),
  workloadNetns(prefix, 2),
];

test.before(async () => {
  if (!isRoot) return;
  before = await hostSnapshot();
  tmp = await mkdtemp(join(tmpdir(), 'nsm-fwd-e2e-'));
  bed = await testbedUp({ prefix, hosts: 2 });
  for (const i of [1, 2]) await new Netns(runner).create(workloadNetns(prefix, i));
  beforeNetns = await Promise.all(allNetns().map(netnsSnapshot));
  fwds = [1, 2].map((i) => forwarderFor(prefix, i, { stateDir: join(tmp, `state-${i}`), logDir: tmp }));
});

test.after.always(async () => {
  if (!isRoot) return;
  await testbedDown(prefix);
  await rm(tmp, { recursive: true, force: true });
});

async function ping(netns: string, to: string, count = 3): Promise<string> {
  const r = await runner.run(['ping', '-c', String(count), '-i', '0.2', '-W', '3', to], {
    netns,
    timeoutMs: 20_000,
  });
  return `${r.code} ${r.stdout}${r.stderr}`;
}

serial('apply() on both hosts: ping both ways for a host process and for a netns workload', async (t) => {
  for (const [i, f] of fwds.entries()) {
    const r = await f.forwarder.adopt(desiredFor(prefix, i + 1, keys));
    t.log(`host ${i + 1}: ${r.ops.length} ops in ${Math.round(r.ms)} ms`);
  }
  const [h1, h2] = [bed.hosts[0]!, bed.hosts[1]!];
  for (const [from, to] of [
    [h1, h2],
    [h2, h1],
  ] as const) {
    const host = await ping(from.netns, hostAddr(to.index));
    t.regex(host, / 0% packet loss/, `host ${from.index} -> host ${to.index}: ${host}`);
    const pod = await ping(workloadNetns(prefix, from.index), podAddr(to.index));
    t.regex(pod, / 0% packet loss/, `netns workload ${from.index} -> ${to.index}: ${pod}`);
    // The first packet waits for the WireGuard handshake (first direction) and ARP, not for proxy_delay.
    const first = Number(/time=([\d.]+) ms/.exec(pod)?.[1] ?? 'NaN');
    t.log(`netns workload ${from.index} -> ${to.index}: first reply after ${first} ms`);
    t.true(first < 500, pod);
  }
});

serial('apply() again with the same state: no mutating command, no WireGuard change', async (t) => {
  for (const [i, f] of fwds.entries()) {
    f.runner.lines.length = 0;
    f.wireguard.mutations.length = 0;
    const r = await f.forwarder.apply(desiredFor(prefix, i + 1, keys));
    t.deepEqual(r.ops, []);
    t.deepEqual(f.runner.mutations, []);
    t.deepEqual(f.wireguard.mutations, []);
    t.true(f.runner.lines.length <= 5, f.runner.lines.join('\n'));
  }
});

serial(
  'apply() of an empty state removes everything: each netns and the machine are as before',
  async (t) => {
    for (const f of fwds) await f.forwarder.apply(emptyDesiredState);
    t.deepEqual(await Promise.all(allNetns().map(netnsSnapshot)), beforeNetns);
    for (const h of bed.hosts) {
      const proxies = await runner.runChecked(['ip', '-n', h.netns, 'neigh', 'show', 'proxy']);
      t.is(proxies.stdout.trim(), '');
    }
    t.deepEqual(
      (await listWireGuardGoProcesses()).filter((p) => p.device.startsWith(`${prefix}-`)),
      [],
    );
    await testbedDown(prefix);
    // Only the root netns' links and this test's names: other suites (benchmarks) start and stop
    // their own wireguard-go devices on this machine meanwhile.
    t.deepEqual((await hostSnapshot()).rootLinks, before.rootLinks);
    t.deepEqual(await hostSnapshot(prefix), { netns: [], wireguardGo: [], sockets: [], rootLinks: [] });
  },
);
