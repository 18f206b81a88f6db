// Root e2e: what Linux does when a link loses its last IPv4 address, and that the forwarder keeps
// the other connections' routes through the WireGuard device when the last host-process connection
// goes. The kernel drops every IPv4 route through a link with its last IPv4 address
// (fib_disable_ip); IPv6 routes stay when the last IPv6 address goes. Each forwarder apply that
// takes the device's last IPv4 address away must leave the routes the other connections need in
// place (put back in the same `ip -batch`), with the one-shot and with the kept `ip` runner.
// Everything lives in namespaces of a one-host test bed the test makes and removes (with its
// wireguard-go processes) on every exit path.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Forwarder, emptyDesiredState, wireguardMtu } from '../../src/forwarder/index.js';
import type { DesiredEntry, DesiredState } from '../../src/forwarder/index.js';
import { ProcessRunner } from '../../src/host/command-runner.js';
import type { CommandRunner } from '../../src/host/command-runner.js';
import { IpBatchRunner } from '../../src/host/ip-batch-runner.js';
import { Netns } from '../../src/host/netns.js';
import { UserspaceWireGuard, generatePrivateKey, publicKeyOf } from '../../src/host/wireguard/index.js';
import { SequenceRandom } from '../../src/host/fake/index.js';
import { testbedDown, testbedUp } from '../helpers/testbed.js';
import type { TestbedHost } from '../helpers/testbed.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const prefix = 'nsmfla';
const runner = new ProcessRunner();
const random = new SequenceRandom('last-address');
const key = generatePrivateKey(random);
const peer = publicKeyOf(generatePrivateKey(random));
/** Test-bed-shaped names, so parallel tests' snapshots ignore them and testbedDown removes them. */
const kernelNetns = `${prefix}-h91`;
const kernelDevice = `${prefix}-h91-wg`;
const workload = `${prefix}-h92`;

let host: TestbedHost;
let tmp: string;

test.before(async () => {
  if (!isRoot) return;
  tmp = await mkdtemp(join(tmpdir(), 'nsm-last-address-'));
  const bed = await testbedUp({ prefix, hosts: 1 });
  host = bed.hosts[0] as TestbedHost;
  await new Netns(runner).create(kernelNetns);
  await new Netns(runner).create(workload);
});

test.after.always(async () => {
  if (!isRoot) return;
  // The wireguard-go processes of `<prefix>-…` devices and every namespace of the prefix.
  await testbedDown(prefix);
  await rm(tmp, { recursive: true, force: true });
});

/** The destinations of the routes through `dev` in `netns` (both families), but the kernel's own. */
async function routesVia(netns: string, dev: string): Promise<string[]> {
  const out: string[] = [];
  for (const family of ['-4', '-6']) {
    const r = await runner.runChecked(['ip', '-n', netns, family, '-json', 'route', 'show', 'dev', dev]);
    for (const x of JSON.parse(r.stdout === '' ? '[]' : r.stdout) as { dst: string; protocol?: string }[])
      if (x.protocol !== 'kernel') out.push(x.dst);
  }
  return out.sort();
}

serial(
  'Linux drops the IPv4 routes through a link with its last IPv4 address; IPv6 routes stay',
  async (t) => {
    const wg = new UserspaceWireGuard({ runner, netns: kernelNetns, logDir: tmp });
    await wg.ensureDevice(kernelDevice, { privateKey: key, listenPort: 51821, mtu: 1420 });
    try {
      const ip = (...w: string[]) => runner.runChecked(['ip', '-n', kernelNetns, ...w]);
      await ip('addr', 'add', '10.131.0.1/32', 'dev', kernelDevice);
      await ip('addr', 'add', '10.131.0.2/32', 'dev', kernelDevice);
      await ip('addr', 'add', 'fd00:131::1/128', 'dev', kernelDevice, 'nodad');
      await ip('route', 'add', '10.132.0.0/24', 'dev', kernelDevice);
      await ip('route', 'add', '10.133.0.7/32', 'dev', kernelDevice);
      await ip('route', 'add', 'fd00:132::/64', 'dev', kernelDevice);
      const all = ['10.132.0.0/24', '10.133.0.7', 'fd00:132::/64'];
      t.deepEqual(await routesVia(kernelNetns, kernelDevice), all);
      await ip('addr', 'del', '10.131.0.1/32', 'dev', kernelDevice);
      t.deepEqual(await routesVia(kernelNetns, kernelDevice), all, 'one of two IPv4 addresses: routes stay');
      await ip('addr', 'del', '10.131.0.2/32', 'dev', kernelDevice);
      const afterV4 = await routesVia(kernelNetns, kernelDevice);
      t.log(`after the last IPv4 address went: ${afterV4.join(' ')}`);
      t.deepEqual(
        afterV4,
        ['fd00:132::/64'],
        'the last IPv4 address: every IPv4 route through the link gone',
      );
      // The link's addresses other than its kernel-made link-local one: the last IPv6 one too.
      await ip('addr', 'del', 'fd00:131::1/128', 'dev', kernelDevice);
      await ip('-6', 'addr', 'flush', 'dev', kernelDevice);
      const v6 = await runner.runChecked([
        'ip',
        '-n',
        kernelNetns,
        '-6',
        'addr',
        'show',
        'dev',
        kernelDevice,
      ]);
      t.notRegex(v6.stdout, /inet6/, 'no IPv6 address left on the link');
      t.deepEqual(await routesVia(kernelNetns, kernelDevice), ['fd00:132::/64'], 'IPv6 routes stay');
    } finally {
      await wg.deleteDevice(kernelDevice);
    }
  },
);

/** A host-process connection (tunnel + address on the device) and a netns connection (tunnel + veth). */
const hostConn: [string, DesiredEntry][] = [
  [
    'h/wireguard',
    { kind: 'tunnel', peerPublicKey: peer, endpoint: '10.123.0.9:51820', remotePrefixes: ['10.140.0.2/32'] },
  ],
  ['h/kernel', { kind: 'host', addresses: ['10.141.0.1/32'] }],
];
const podConn: [string, DesiredEntry][] = [
  [
    'p/wireguard',
    {
      kind: 'tunnel',
      peerPublicKey: peer,
      endpoint: '10.123.0.9:51820',
      remotePrefixes: ['10.140.1.2/32', 'fd00:140::2/128'],
    },
  ],
  [
    'p/kernel',
    {
      kind: 'netns',
      netns: { kind: 'named', name: workload },
      ifName: 'nsm0',
      addresses: ['10.141.1.1/32'],
      routes: ['10.140.1.2/32'],
    },
  ],
];

async function lastHostConnectionGoes(
  t: ExecutionContext,
  label: string,
  ipRunner: CommandRunner,
): Promise<void> {
  const wireguard = new UserspaceWireGuard({ runner, netns: host.netns, logDir: tmp });
  const stateDir = join(tmp, label);
  const fwd = new Forwarder({ runner: ipRunner, wireguard, stateDir, netns: host.netns });
  const device = { name: host.wgDevice, privateKey: key, listenPort: 51820, mtu: wireguardMtu(1500) };
  const podRoutes = ['10.140.1.2', 'fd00:140::2'];
  const both: DesiredState = { device, entries: Object.fromEntries([...hostConn, ...podConn]) };
  const podOnly: DesiredState = { device, entries: Object.fromEntries(podConn) };
  try {
    await fwd.apply(both);
    t.deepEqual(await routesVia(host.netns, host.wgDevice), ['10.140.0.2', ...podRoutes]);
    // setEntries: planned from the host as the last apply left it.
    await fwd.setEntries(new Map(hostConn.map(([k]) => [k, undefined])));
    const afterSet = await routesVia(host.netns, host.wgDevice);
    t.log(
      `${label}: routes via the device right after setEntries removed the host connection: ${afterSet.join(' ')}`,
    );
    t.deepEqual(afterSet, podRoutes, `${label}: setEntries keeps the netns connection's routes`);
    // apply: planned from a read of the host.
    await fwd.setEntries(new Map(hostConn));
    await fwd.apply(podOnly);
    const afterApply = await routesVia(host.netns, host.wgDevice);
    t.log(
      `${label}: routes via the device right after apply removed the host connection: ${afterApply.join(' ')}`,
    );
    t.deepEqual(afterApply, podRoutes, `${label}: apply keeps the netns connection's routes`);
    // A fresh forwarder finds nothing to do.
    const fresh = new Forwarder({ runner, wireguard, stateDir, netns: host.netns });
    t.deepEqual((await fresh.adopt(podOnly)).ops, [], `${label}: the host is as desired`);
  } finally {
    await fwd.apply(emptyDesiredState).catch(() => undefined);
  }
}

serial(
  'removing the last host connection keeps the netns connection routes (one ip process per batch)',
  async (t) => {
    await lastHostConnectionGoes(t, 'one-shot', runner);
  },
);

serial('removing the last host connection keeps the netns connection routes (kept ip -batch)', async (t) => {
  const kept = new IpBatchRunner({ inner: runner });
  try {
    await lastHostConnectionGoes(t, 'kept', kept);
  } finally {
    await kept.close();
  }
});
