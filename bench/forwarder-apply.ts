// Forwarder apply() benchmark (issue 4 "Measure": apply() of 200 connections ≤ 2 s), as root on
// a one-host test bed (its own netns; the root netns is not touched). Two shapes:
//   host  — 200 connections of host processes: an address on the WireGuard device and a route per
//           connection, 20 peers (10 connections each)
//   netns — 200 connections of netns workloads: a veth pair each into 20 workload netns (10 each)
// For each: the first apply, the same apply again (must be a no-op), and the removal. Then
// connections one at a time (host shape, 20 of them, each its two entries): apply() of the whole
// state (reads the host first) against setEntries() (plans from the host as the last apply left
// it), median ms per connection set up and per connection removed.
//   node --import tsx bench/forwarder-apply.ts [--connections 200]
// Last line: one summary line of the figures.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Forwarder, emptyDesiredState, wireguardMtu } from '../src/forwarder/index.js';
import type { DesiredEntry, DesiredState } from '../src/forwarder/index.js';
import { ProcessRunner } from '../src/host/command-runner.js';
import { Netns } from '../src/host/netns.js';
import { UserspaceWireGuard, generatePrivateKey, publicKeyOf } from '../src/host/wireguard/index.js';
import { testbedDown, testbedUp } from '../test/helpers/testbed.js';

const prefix = 'nsmfab';
const n = Number(process.argv[process.argv.indexOf('--connections') + 1] ?? '200') || 200;
const peers = Array.from({ length: 20 }, () => publicKeyOf(generatePrivateKey()));
const runner = new ProcessRunner();

function desired(shape: 'host' | 'netns', device: string, key: string): DesiredState {
  const entries: Record<string, DesiredEntry> = {};
  for (let i = 0; i < n; i++) {
    const far = `10.${100 + Math.floor(i / 250)}.${i % 250}.2`;
    const near = `10.${110 + Math.floor(i / 250)}.${i % 250}.1`;
    entries[`c${i}/wireguard`] = {
      kind: 'tunnel',
      peerPublicKey: peers[i % peers.length] ?? '',
      endpoint: `10.123.0.${2 + (i % peers.length)}:51820`,
      remotePrefixes: [`${far}/32`],
    };
    entries[`c${i}/kernel`] =
      shape === 'host'
        ? { kind: 'host', addresses: [`${near}/32`] }
        : {
            kind: 'netns',
            netns: { kind: 'named', name: `${prefix}-h${10 + (i % 20)}` },
            ifName: `nsm${Math.floor(i / 20)}`,
            addresses: [`${near}/32`],
            routes: [`${far}/32`],
          };
  }
  return { device: { name: device, privateKey: key, listenPort: 51820, mtu: wireguardMtu(1500) }, entries };
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'nsm-fwd-bench-'));
  const bed = await testbedUp({ prefix, hosts: 1 });
  const h = bed.hosts[0];
  if (h === undefined) throw new Error('no host');
  const results: string[] = [];
  try {
    for (let w = 10; w < 30; w++) await new Netns(runner).create(`${prefix}-h${w}`);
    const key = generatePrivateKey();
    const wireguard = new UserspaceWireGuard({ runner, netns: h.netns, logDir: tmp });
    const fwd = new Forwarder({ runner, wireguard, stateDir: tmp, netns: h.netns });
    // The device first, so its start-up (wireguard-go) is not counted against the connections.
    const dev = await fwd.apply({ device: desired('host', h.wgDevice, key).device!, entries: {} });
    console.log(`device up (wireguard-go started): ${dev.ms.toFixed(0)} ms`);
    for (const shape of ['host', 'netns'] as const) {
      const want = desired(shape, h.wgDevice, key);
      const first = await fwd.apply(want);
      const again = await fwd.apply(want);
      const removal = await fwd.apply({ device: want.device!, entries: {} });
      console.log(
        `${shape}: apply ${n} connections ${first.ms.toFixed(0)} ms (${first.ops.length} ops), again ${again.ms.toFixed(0)} ms (${again.ops.length} ops), remove ${removal.ms.toFixed(0)} ms`,
      );
      if (again.ops.length !== 0) throw new Error(`second apply of ${shape} ran ${again.ops.length} ops`);
      results.push(`${shape} ${first.ms.toFixed(0)}/${again.ms.toFixed(0)}/${removal.ms.toFixed(0)} ms`);
    }
    const want = desired('host', h.wgDevice, key);
    const conns = Array.from({ length: 20 }, (_, i) =>
      Object.entries(want.entries).filter(([k]) => k.startsWith(`c${i}/`)),
    );
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const oneByOne: string[] = [];
    for (const how of ['apply', 'setEntries'] as const) {
      const up: number[] = [];
      const down: number[] = [];
      for (const c of conns) {
        const r =
          how === 'apply'
            ? await fwd.apply({
                ...fwd.desired,
                entries: { ...fwd.desired.entries, ...Object.fromEntries(c) },
              })
            : await fwd.setEntries(new Map(c));
        up.push(r.ms);
      }
      for (const c of conns) {
        const r =
          how === 'apply'
            ? await fwd.apply({
                ...fwd.desired,
                entries: Object.fromEntries(
                  Object.entries(fwd.desired.entries).filter(([k]) => !c.some(([ck]) => ck === k)),
                ),
              })
            : await fwd.setEntries(new Map(c.map(([k]) => [k, undefined])));
        down.push(r.ms);
      }
      console.log(
        `one connection at a time with ${how}(): set up median ${median(up).toFixed(1)} ms, removed median ${median(down).toFixed(1)} ms`,
      );
      oneByOne.push(`${how} ${median(up).toFixed(1)}/${median(down).toFixed(1)} ms`);
    }
    results.push(`one at a time up/down: ${oneByOne.join(', ')}`);
    await fwd.apply(emptyDesiredState);
  } finally {
    await testbedDown(prefix);
    await rm(tmp, { recursive: true, force: true });
  }
  console.log(
    `forwarder-apply: ${n} connections, apply/again/remove: ${results.join('; ')} (target apply ≤ 2000 ms)`,
  );
}

await main();
