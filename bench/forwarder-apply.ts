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
//
// --mode scaling [--old <git rev>] [--rounds 2] [--samples 15]: the cost of one apply as the
// connection count grows, for this tree's forwarder and the one at <rev> (default 130b19f, src/
// extracted to a temp dir with git archive) side by side in one process, rounds interleaved
// (old, new, old, new …), both with this tree's command runner and WireGuard:
//   drift  — reapply() with nothing changed (the daemon's drift repair every 10 s), n connections up
//   set    — setEntries() of one connection (its two entries), up then down, with 0 and n others
// each as median wall ms and median CPU ms of this process (what the agent's event loop pays;
// the ip processes' own CPU is not in it), host and netns shapes. Run it with the daemon's flags:
//   flock /tmp/nsm-bench.lock node --no-opt --no-maglev --import tsx bench/forwarder-apply.ts --mode scaling
//
// --mode kept [--rounds 3] [--samples 15]: this tree's forwarder with one `ip` process per batch
// (ProcessRunner, as before) against kept `ip -batch` processes (IpBatchRunner, as the daemon runs
// it), rounds interleaved, host shape with n connections up: setEntries() of 1 and of 10
// connections (up, then down), and the quiet drift check (reapply() with nothing changed). Each as
// median wall ms, CPU ms of this process and event-loop busy ms (what the agent pays; the ip
// processes' own CPU is not in it).
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as forwarderModule from '../src/forwarder/index.js';
import { Forwarder, emptyDesiredState, wireguardMtu } from '../src/forwarder/index.js';
import type { DesiredEntry, DesiredState } from '../src/forwarder/index.js';
import { ProcessRunner } from '../src/host/command-runner.js';
import type { CommandRunner } from '../src/host/command-runner.js';
import { IpBatchRunner } from '../src/host/ip-batch-runner.js';
import { Netns } from '../src/host/netns.js';
import { UserspaceWireGuard, generatePrivateKey, publicKeyOf } from '../src/host/wireguard/index.js';
import { connectionEntries } from '../test/helpers/forwarder-entries.js';
import { testbedDown, testbedUp } from '../test/helpers/testbed.js';

const prefix = 'nsmfab';
const arg = (name: string): string | undefined =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
const n = Number(arg('--connections') ?? '200') || 200;
const peers = Array.from({ length: 20 }, () => publicKeyOf(generatePrivateKey()));
const runner = new ProcessRunner();

function desired(shape: 'host' | 'netns', device: string, key: string): DesiredState {
  const entries: Record<string, DesiredEntry> = {};
  for (let i = 0; i < n; i++) for (const [k, e] of connection(shape, i)) entries[k] = e;
  return { device: { name: device, privateKey: key, listenPort: 51820, mtu: wireguardMtu(1500) }, entries };
}

/** The two entries of connection i: its tunnel, and its local side (host process or netns workload). */
function connection(shape: 'host' | 'netns', i: number): [string, DesiredEntry][] {
  return connectionEntries(i, {
    far: `10.${100 + Math.floor(i / 250)}.${i % 250}.2`,
    near: `10.${110 + Math.floor(i / 250)}.${i % 250}.1`,
    peers,
    ...(shape === 'netns'
      ? { netns: { name: `${prefix}-h${10 + (i % 20)}`, ifName: `nsm${Math.floor(i / 20)}` } }
      : {}),
  });
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

type ForwarderModule = typeof forwarderModule;
type Impl = { readonly label: string; readonly mod: ForwarderModule };
type Shape = 'host' | 'netns';

const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** Wall ms and CPU ms of this process for one call. */
async function timed(f: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(cpu0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

async function loadOld(rev: string, dir: string): Promise<ForwarderModule> {
  const root = resolve(import.meta.dirname, '..');
  const tar = execFileSync('git', ['-C', root, 'archive', rev, 'src'], { maxBuffer: 1 << 28 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
  await symlink(join(root, 'package.json'), join(dir, 'package.json'));
  return (await import(join(dir, 'src', 'forwarder', 'index.ts'))) as ForwarderModule;
}

interface Figures {
  drift: { wall: number[]; cpu: number[] };
  set0: { wall: number[]; cpu: number[] };
  setN: { wall: number[]; cpu: number[] };
}

/** One round of one implementation and shape: a fresh forwarder, measured, then everything removed. */
async function scalingRound(
  impl: Impl,
  shape: Shape,
  hostNetns: string,
  wgDevice: string,
  samples: number,
  into: Figures,
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-fwd-bench-'));
  const wireguard = new UserspaceWireGuard({ runner, netns: hostNetns, logDir: stateDir });
  const fwd = new impl.mod.Forwarder({ runner, wireguard, stateDir, netns: hostNetns });
  try {
    const key = generatePrivateKey();
    const full = desired(shape, wgDevice, key);
    const device = full.device!;
    await fwd.apply({ device, entries: {} });
    // One connection set up and taken down again, `samples` times, over what is there.
    const oneByOne = async (into: { wall: number[]; cpu: number[] }): Promise<void> => {
      for (let s = 0; s < samples; s++) {
        const c = connection(shape, n + 1 + s);
        const up = await timed(() => fwd.setEntries(new Map(c)));
        const down = await timed(() => fwd.setEntries(new Map(c.map(([k]) => [k, undefined]))));
        into.wall.push((up.wall + down.wall) / 2);
        into.cpu.push((up.cpu + down.cpu) / 2);
      }
    };
    await oneByOne(into.set0);
    await fwd.apply(full);
    await fwd.reapply();
    for (let s = 0; s < samples; s++) {
      const r = await timed(async () => {
        const x = await fwd.reapply();
        if (x.ops.length !== 0)
          throw new Error(`${impl.label}: drift repair with nothing changed ran ${x.ops.length} ops`);
      });
      into.drift.wall.push(r.wall);
      into.drift.cpu.push(r.cpu);
    }
    await oneByOne(into.setN);
  } finally {
    await fwd.apply(emptyDesiredState).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

async function scaling(): Promise<void> {
  const rev = arg('--old') ?? '130b19f';
  const rounds = Number(arg('--rounds') ?? '2') || 2;
  const samples = Number(arg('--samples') ?? '15') || 15;
  const tmp = await mkdtemp(join(tmpdir(), 'nsm-fwd-old-'));
  const bed = await testbedUp({ prefix, hosts: 1 });
  const h = bed.hosts[0];
  try {
    if (h === undefined) throw new Error('no host');
    for (let w = 10; w < 30; w++) await new Netns(runner).create(`${prefix}-h${w}`);
    const impls: Impl[] = [
      { label: `old (${rev})`, mod: await loadOld(rev, tmp) },
      { label: 'new', mod: forwarderModule },
    ];
    const empty = (): Figures => ({
      drift: { wall: [], cpu: [] },
      set0: { wall: [], cpu: [] },
      setN: { wall: [], cpu: [] },
    });
    const figures = new Map<string, Figures>();
    for (let r = 0; r < rounds; r++) {
      for (const shape of ['host', 'netns'] as const) {
        for (const impl of impls) {
          const k = `${impl.label} ${shape}`;
          const f = figures.get(k) ?? empty();
          figures.set(k, f);
          await scalingRound(impl, shape, h.netns, h.wgDevice, samples, f);
          console.log(`round ${r + 1}/${rounds} ${k} done`);
        }
      }
    }
    const cell = (x: { wall: number[]; cpu: number[] }): string =>
      `${median(x.wall).toFixed(1).padStart(6)} / ${median(x.cpu).toFixed(1).padStart(5)}`;
    console.log(
      `\nmedian wall ms / CPU ms of this process (${rounds} rounds × ${samples} samples, interleaved)`,
    );
    console.log(
      `${'implementation shape'.padEnd(28)} ${`drift, ${n} up`.padStart(16)} ${'set, 0 others'.padStart(16)} ${`set, ${n} others`.padStart(16)}  set CPU ${n}/0`,
    );
    for (const [k, f] of figures) {
      console.log(
        `${k.padEnd(28)} ${cell(f.drift).padStart(16)} ${cell(f.set0).padStart(16)} ${cell(f.setN).padStart(16)}  ${(median(f.setN.cpu) / median(f.set0.cpu)).toFixed(2)}×`,
      );
    }
    const summary: string[] = [];
    for (const shape of ['host', 'netns'] as const) {
      const o = figures.get(`${impls[0]?.label ?? ''} ${shape}`);
      const nw = figures.get(`new ${shape}`);
      if (o === undefined || nw === undefined) continue;
      summary.push(
        `${shape}: drift CPU ${median(o.drift.cpu).toFixed(1)} -> ${median(nw.drift.cpu).toFixed(1)} ms, set with ${n} others CPU ${median(o.setN.cpu).toFixed(1)} -> ${median(nw.setN.cpu).toFixed(1)} ms (0 others ${median(o.set0.cpu).toFixed(1)} -> ${median(nw.set0.cpu).toFixed(1)})`,
      );
    }
    console.log(`forwarder-apply scaling (old ${rev} -> new, ${n} connections): ${summary.join('; ')}`);
  } finally {
    await testbedDown(prefix);
    await rm(tmp, { recursive: true, force: true });
  }
}

type Sample = { wall: number; cpu: number; busy: number };
type Series = Sample[];

/** Like timed(), with the event loop's busy time (performance.eventLoopUtilization). */
async function timedLoop(f: () => Promise<unknown>): Promise<Sample> {
  const elu0 = performance.eventLoopUtilization();
  const { wall, cpu } = await timed(f);
  const busy = performance.eventLoopUtilization(elu0).active;
  return { wall, cpu, busy };
}

/** One round of one runner: a fresh forwarder, n host connections up, measured, then removed. */
async function keptRound(
  runnerOf: () => CommandRunner & { close?: () => Promise<void> },
  hostNetns: string,
  wgDevice: string,
  samples: number,
  into: Record<'set1' | 'set10' | 'drift', Series>,
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-fwd-bench-'));
  const wireguard = new UserspaceWireGuard({ runner, netns: hostNetns, logDir: stateDir });
  const ipRunner = runnerOf();
  const fwd = new Forwarder({ runner: ipRunner, wireguard, stateDir, netns: hostNetns });
  try {
    const full = desired('host', wgDevice, generatePrivateKey());
    await fwd.apply(full);
    await fwd.reapply();
    for (let s = 0; s < samples; s++) {
      into.drift.push(
        await timedLoop(async () => {
          const x = await fwd.reapply();
          if (x.ops.length !== 0)
            throw new Error(`drift repair with nothing changed ran ${x.ops.length} ops`);
        }),
      );
    }
    for (const [size, series] of [
      [1, into.set1],
      [10, into.set10],
    ] as const) {
      for (let s = 0; s < samples; s++) {
        const conns = Array.from({ length: size }, (_, i) => connection('host', n + 1 + s * size + i)).flat();
        const up = await timedLoop(() => fwd.setEntries(new Map(conns)));
        const down = await timedLoop(() => fwd.setEntries(new Map(conns.map(([k]) => [k, undefined]))));
        series.push({
          wall: (up.wall + down.wall) / 2,
          cpu: (up.cpu + down.cpu) / 2,
          busy: (up.busy + down.busy) / 2,
        });
      }
    }
  } finally {
    await fwd.apply(emptyDesiredState).catch(() => undefined);
    await ipRunner.close?.();
    await rm(stateDir, { recursive: true, force: true });
  }
}

async function kept(): Promise<void> {
  const rounds = Number(arg('--rounds') ?? '3') || 3;
  const samples = Number(arg('--samples') ?? '15') || 15;
  const bed = await testbedUp({ prefix, hosts: 1 });
  const h = bed.hosts[0];
  try {
    if (h === undefined) throw new Error('no host');
    const impls = [
      { label: 'one ip per batch', make: () => new ProcessRunner() },
      { label: 'kept ip -batch', make: () => new IpBatchRunner({ inner: new ProcessRunner() }) },
    ];
    const figures = new Map<string, Record<'set1' | 'set10' | 'drift', Series>>();
    for (let r = 0; r < rounds; r++) {
      for (const impl of r % 2 === 0 ? impls : [...impls].reverse()) {
        const f = figures.get(impl.label) ?? { set1: [], set10: [], drift: [] };
        figures.set(impl.label, f);
        await keptRound(impl.make, h.netns, h.wgDevice, samples, f);
        console.log(`round ${r + 1}/${rounds} ${impl.label} done`);
      }
    }
    const cell = (xs: Series): string =>
      `${median(xs.map((x) => x.wall)).toFixed(2)} / ${median(xs.map((x) => x.cpu)).toFixed(2)} / ${median(xs.map((x) => x.busy)).toFixed(2)}`;
    console.log(
      `\nmedian wall ms / CPU ms / event-loop busy ms of this process (${rounds} rounds × ${samples} samples, interleaved), ${n} host connections up`,
    );
    console.log(
      `${'runner'.padEnd(20)} ${'set 1 conn (2 entries)'.padStart(24)} ${'set 10 conns (20 entries)'.padStart(26)} ${'quiet drift check'.padStart(22)}`,
    );
    for (const [label, f] of figures)
      console.log(
        `${label.padEnd(20)} ${cell(f.set1).padStart(24)} ${cell(f.set10).padStart(26)} ${cell(f.drift).padStart(22)}`,
      );
    const m = (label: string, k: 'set1' | 'set10' | 'drift', x: keyof Sample): string =>
      median((figures.get(label)?.[k] ?? []).map((s) => s[x])).toFixed(2);
    const [a, b] = impls.map((i) => i.label) as [string, string];
    console.log(
      `forwarder-apply kept (${a} -> ${b}, ${n} host conns): set1 wall ${m(a, 'set1', 'wall')} -> ${m(b, 'set1', 'wall')} ms cpu ${m(a, 'set1', 'cpu')} -> ${m(b, 'set1', 'cpu')} ms; set10 wall ${m(a, 'set10', 'wall')} -> ${m(b, 'set10', 'wall')} ms cpu ${m(a, 'set10', 'cpu')} -> ${m(b, 'set10', 'cpu')} ms; drift wall ${m(a, 'drift', 'wall')} -> ${m(b, 'drift', 'wall')} ms cpu ${m(a, 'drift', 'cpu')} -> ${m(b, 'drift', 'cpu')} ms busy ${m(a, 'drift', 'busy')} -> ${m(b, 'drift', 'busy')} ms`,
    );
  } finally {
    await testbedDown(prefix);
  }
}

if (arg('--mode') === 'scaling') await scaling();
else if (arg('--mode') === 'kept') await kept();
else await main();
