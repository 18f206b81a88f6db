// Root: the forwarder on kept `ip -batch` processes (IpBatchRunner, as the daemon runs it) makes the
// same changes as with one `ip` process per batch (ProcessRunner, as before). One random sequence
// of connection sets (host processes and netns workloads) runs twice on a one-host test bed, once
// per runner, with the same disturbances between steps: a kept process killed, a route deleted
// behind the forwarder's back (so a batch fails in the middle and the forwarder re-reads), and a
// workload netns deleted while its kept process runs in it. Every step's ops must be the same, and
// after each a fresh forwarder with one-shot processes must find the host as desired.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Forwarder, describeOp, emptyDesiredState, wireguardMtu } from '../../../src/forwarder/index.js';
import type { ApplyResult, DesiredEntry, DesiredState } from '../../../src/forwarder/index.js';
import { connectionEntries } from '../../helpers/forwarder-entries.js';
import { ProcessRunner } from '../../../src/host/command-runner.js';
import type { CommandRunner } from '../../../src/host/command-runner.js';
import { IpBatchRunner } from '../../../src/host/ip-batch-runner.js';
import { Netns } from '../../../src/host/netns.js';
import { UserspaceWireGuard, generatePrivateKey, publicKeyOf } from '../../../src/host/wireguard/index.js';
import { SequenceRandom } from '../../../src/host/fake/index.js';
import { testbedDown, testbedUp } from '../../helpers/testbed.js';
import type { TestbedHost } from '../../helpers/testbed.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const prefix = 'nsmfkt';
const oneShot = new ProcessRunner();
const random = new SequenceRandom('kept-ip');
const key = generatePrivateKey(random);
const peers = [0, 1, 2].map(() => publicKeyOf(generatePrivateKey(random)));
/** Workload netns `<prefix>-h9<i>`: test-bed-shaped names, so parallel tests' snapshots ignore them. */
const workloads = [1, 2, 3].map((i) => `${prefix}-h9${i}`);
const conns = 12;
const steps = 36;

let host: TestbedHost;
let tmp: string;

test.before(async () => {
  if (!isRoot) return;
  tmp = await mkdtemp(join(tmpdir(), 'nsm-kept-ip-'));
  const bed = await testbedUp({ prefix, hosts: 1 });
  host = bed.hosts[0] as TestbedHost;
});

test.after.always(async () => {
  if (!isRoot) return;
  await testbedDown(prefix);
  for (const w of workloads) await new Netns(oneShot).delete(w);
  await rm(tmp, { recursive: true, force: true });
});

/** Connection i's two entries: a tunnel and its local side (even: host process, odd: netns workload). */
function connection(i: number): [string, DesiredEntry][] {
  return connectionEntries(i, {
    far: `10.120.${i}.2`,
    near: `10.121.${i}.1`,
    peers,
    ...(i % 2 === 0 ? {} : { netns: { name: workloads[i % workloads.length] ?? '', ifName: `nsm${i}` } }),
  });
}

/** A seeded PRNG (mulberry32): the same steps on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The steps: which connections go up or down together, the same for both runs. */
const next = seeded(6);
const plan: number[][] = Array.from({ length: steps }, () => {
  const size = 1 + Math.floor(next() * 3);
  return Array.from({ length: size }, () => Math.floor(next() * conns));
});

interface Run {
  readonly ops: string[][];
  readonly checks: string[];
}

async function hostVeths(): Promise<number> {
  const r = await oneShot.runChecked(['ip', '-n', host.netns, '-json', 'link', 'show', 'type', 'veth']);
  return (JSON.parse(r.stdout === '' ? '[]' : r.stdout) as unknown[]).length;
}

async function runSequence(
  t: ExecutionContext,
  label: string,
  runner: CommandRunner,
  kept: IpBatchRunner | undefined,
): Promise<Run> {
  for (const w of workloads) {
    await new Netns(oneShot).delete(w);
    await new Netns(oneShot).create(w);
  }
  const stateDir = join(tmp, label);
  const wireguard = new UserspaceWireGuard({ runner: oneShot, netns: host.netns, logDir: tmp });
  const fwd = new Forwarder({ runner, wireguard, stateDir, netns: host.netns });
  const device = { name: host.wgDevice, privateKey: key, listenPort: 51820, mtu: wireguardMtu(1500) };
  const up = new Set<number>();
  const ops: string[][] = [];
  const checks: string[] = [];
  try {
    await fwd.apply({ device, entries: {} });
    for (const [s, group] of plan.entries()) {
      if (s === 8 && kept !== undefined) {
        // A kept process killed between two applies.
        for (const pid of kept.pids) process.kill(pid, 'SIGKILL');
      }
      const changes = new Map<string, DesiredEntry | undefined>();
      for (const i of new Set(group)) {
        const goingUp = !up.has(i);
        if (goingUp) up.add(i);
        else up.delete(i);
        for (const [k, e] of connection(i)) changes.set(k, goingUp ? e : undefined);
      }
      if (s === 16) {
        // A route of a host connection that this step takes down, deleted behind the forwarder's
        // back: its batch fails in the middle, and it reads the host and plans again.
        const gone = [...new Set(group)].find((i) => i % 2 === 0 && !up.has(i));
        if (gone !== undefined)
          await oneShot.run(['ip', '-n', host.netns, 'route', 'del', `10.120.${gone}.2/32`]);
      }
      if (s === 24) {
        // A workload netns deleted while (with the kept runner) its process runs in it: its veths
        // go with it, as they go when no process is left in it.
        const inIt = [...up].filter((i) => i % 2 === 1 && i % workloads.length === 0).length;
        const before = await hostVeths();
        await new Netns(oneShot).delete(workloads[0] ?? '');
        let now = await hostVeths();
        for (let i = 0; i < 150 && now > before - inIt; i++) {
          await sleep(30);
          now = await hostVeths();
        }
        t.is(now, before - inIt, `${label}: the deleted netns took its veths with it`);
      }
      // A connection into the deleted netns fails, with either runner the same way.
      ops.push(await attempt(fwd.setEntries(changes)));
      checks.push(await check(fwd.desired, stateDir));
    }
    ops.push(await attempt(fwd.reapply()));
  } finally {
    await fwd.apply(emptyDesiredState).catch(() => undefined);
  }
  return { ops, checks };
}

/** A fresh forwarder with one process per batch finds the host as desired: the ops it would run. */
async function check(desired: DesiredState, stateDir: string): Promise<string> {
  const wireguard = new UserspaceWireGuard({ runner: oneShot, netns: host.netns, logDir: tmp });
  const fresh = new Forwarder({ runner: oneShot, wireguard, stateDir, netns: host.netns });
  return (await attempt(fresh.adopt(desired))).join('; ');
}

/** The ops an apply ran, or its failure. */
async function attempt(apply: Promise<ApplyResult>): Promise<string[]> {
  try {
    return (await apply).ops.map(
      (o) =>
        `${describeOp(o)}${o.op === 'ip-batch' ? `: ${o.commands.map((c) => c.join(' ')).join('; ')}` : ''}`,
    );
  } catch (e: unknown) {
    return [`failed: ${(e as Error).message}`];
  }
}

serial(
  'the same ops with kept ip processes as with one ip process per batch, and the host as desired',
  async (t) => {
    const kept = new IpBatchRunner({ inner: oneShot });
    let keptRun: Run;
    let pids: number[];
    try {
      keptRun = await runSequence(t, 'kept', kept, kept);
      pids = kept.pids;
      t.true(pids.length >= 1, 'kept processes served the forwarder');
    } finally {
      await kept.close();
    }
    t.deepEqual(kept.pids, []);
    for (const pid of pids)
      t.throws(() => process.kill(pid, 0), undefined, `kept ip ${pid} stopped by close()`);
    const oneShotRun = await runSequence(t, 'one-shot', oneShot, undefined);
    t.deepEqual(keptRun.ops, oneShotRun.ops);

    // Until the netns deletion (step 24), after each step a fresh forwarder has nothing to do (step
    // 16 also takes the WireGuard device's last IPv4 address, which drops every IPv4 route through
    // the device: the apply puts the other connections' routes back); after it, what it finds is
    // the same with either runner.
    t.deepEqual(
      keptRun.checks.slice(0, 24),
      keptRun.checks.slice(0, 24).map(() => ''),
    );
    t.deepEqual(oneShotRun.checks, keptRun.checks);
    // The disturbances did something: a repair after the deleted route, the netns' entries gone.
    t.true(keptRun.ops.flat().length > steps);
  },
);
