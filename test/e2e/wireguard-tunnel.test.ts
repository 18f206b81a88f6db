// Root e2e: two simulated hosts (test bed namespaces), a wireguard-go device in each made through
// the userspace backend, peers pointing at each other's underlay address, ping through the tunnel
// both ways; then teardown, and the machine is as it was before (namespaces, processes, sockets,
// root links).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { Ip } from '../../src/host/ip/index.js';
import { UserspaceWireGuard, generatePrivateKey, publicKeyOf } from '../../src/host/wireguard/index.js';
import { hostSnapshot, netnsSnapshot } from '../helpers/host-snapshot.js';
import type { HostSnapshot, NetnsSnapshot } from '../helpers/host-snapshot.js';
import { testbedDown, testbedUp } from '../helpers/testbed.js';
import type { Testbed } from '../helpers/testbed.js';

const prefix = 'nsmwge2e';
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const overlay = (i: number): string => `10.124.0.${i}`;

let before: HostSnapshot;
let beforeNetns: NetnsSnapshot[];
let bed: Testbed;
let logDir: string;

test.before(async () => {
  if (!isRoot) return;
  before = await hostSnapshot();
  logDir = await mkdtemp(join(tmpdir(), 'nsm-wg-e2e-'));
  bed = await testbedUp({ prefix, hosts: 2 });
  beforeNetns = await Promise.all(bed.hosts.map((h) => netnsSnapshot(h.netns)));
});

test.after.always(async () => {
  if (!isRoot) return;
  await testbedDown(prefix);
  await rm(logDir, { recursive: true, force: true });
});

serial('wireguard-go tunnel between two hosts: ping both ways through it', async (t) => {
  const keys = bed.hosts.map(() => generatePrivateKey());
  const wgs = bed.hosts.map((h) => new UserspaceWireGuard({ runner, netns: h.netns, logDir }));
  for (const [i, h] of bed.hosts.entries()) {
    const started = performance.now();
    await wgs[i]!.ensureDevice(h.wgDevice, { privateKey: keys[i]!, listenPort: 51820 });
    t.log(
      `${h.wgDevice}: wireguard-go started and configured in ${Math.round(performance.now() - started)} ms`,
    );
  }
  for (const [i, h] of bed.hosts.entries()) {
    const peers = bed.hosts
      .filter((o) => o !== h)
      .map((o) => ({
        publicKey: publicKeyOf(keys[o.index - 1]!),
        endpoint: `${o.underlayIp}:51820`,
        allowedIps: [`${overlay(o.index)}/32`],
      }));
    await wgs[i]!.configure(h.wgDevice, { peers, replacePeers: true });
    await new Ip(runner, { netns: h.netns }).addAddress(h.wgDevice, `${overlay(h.index)}/24`);
  }
  for (const [from, to] of [
    [bed.hosts[0]!, bed.hosts[1]!],
    [bed.hosts[1]!, bed.hosts[0]!],
  ] as const) {
    const r = await runner.run(['ping', '-c', '3', '-i', '0.2', '-W', '2', overlay(to.index)], {
      netns: from.netns,
      timeoutMs: 15_000,
    });
    t.is(r.code, 0, `ping ${from.netns} -> ${overlay(to.index)}: ${r.stdout}${r.stderr}`);
    t.regex(r.stdout, / 0% packet loss/);
  }
  const state = await wgs[0]!.show(bed.hosts[0]!.wgDevice);
  t.is(state?.publicKey, publicKeyOf(keys[0]!));
  const peer = state?.peers[0];
  t.is(peer?.publicKey, publicKeyOf(keys[1]!));
  t.is(peer?.endpoint, `${bed.hosts[1]!.underlayIp}:51820`);
  t.true((peer?.lastHandshakeMs ?? 0) > Date.now() - 60_000, 'a recent handshake');
  t.true((peer?.rxBytes ?? 0) > 0 && (peer?.txBytes ?? 0) > 0);
});

serial('teardown leaves the machine as it was', async (t) => {
  for (const h of bed.hosts) {
    const wg = new UserspaceWireGuard({ runner, netns: h.netns, logDir });
    await wg.deleteDevice(h.wgDevice);
    t.is(await wg.show(h.wgDevice), undefined);
  }
  // Deleting the device took its link, addresses and routes with it.
  t.deepEqual(await Promise.all(bed.hosts.map((h) => netnsSnapshot(h.netns))), beforeNetns);
  await testbedDown(prefix);
  const after = await hostSnapshot();
  t.deepEqual(after, before);
  t.deepEqual(await hostSnapshot(prefix), { netns: [], wireguardGo: [], sockets: [], rootLinks: [] });
});
