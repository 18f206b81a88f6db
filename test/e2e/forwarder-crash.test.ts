// Root e2e, reliability.md R18 for the forwarder: an agent killed with SIGKILL after any step of
// apply() leaves nothing a fresh forwarder cannot find — adopt() with an empty desired state
// leaves host and workload netns exactly as before (no links, addresses, routes, proxy entries,
// peers, wireguard-go processes or sockets), and adopt() with the original state converges
// (pings pass). And the tunnel keeps passing a ping every 10 ms, with no loss, while the process
// that made it is killed and a new forwarder adopts it without recreating anything.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { Netns } from '../../src/host/netns.js';
import {
  defaultSocketDir,
  generatePrivateKey,
  listWireGuardGoProcesses,
} from '../../src/host/wireguard/index.js';
import { emptyDesiredState } from '../../src/forwarder/index.js';
import { hostSnapshot, netnsSnapshot } from '../helpers/host-snapshot.js';
import type { HostSnapshot, NetnsSnapshot } from '../helpers/host-snapshot.js';
import { testbedDown, testbedUp } from '../helpers/testbed.js';
import type { Testbed } from '../helpers/testbed.js';
import { desiredFor, forwarderFor, hostAddr, podAddr, workloadNetns } from './forwarder-fixture.js';

const prefix = 'nsmfwdc';
const root = fileURLToPath(new URL('../../', import.meta.url));
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const keys = [generatePrivateKey(), generatePrivateKey()];

let before: HostSnapshot;
let bed: Testbed;
let tmp: string;
/** Host 1 and its workload netns before any forwarder ran. */
let clean: NetnsSnapshot[];
const host1Netns = (): string[] => [bed.hosts[0]!.netns, workloadNetns(prefix, 1)];
const state1 = (): string => join(tmp, 'state-1');

test.before(async () => {
  if (!isRoot) return;
  before = await hostSnapshot();
  tmp = await mkdtemp(join(tmpdir(), 'nsm-fwd-crash-'));
  bed = await testbedUp({ prefix, hosts: 2 });
  for (const i of [1, 2]) await new Netns(runner).create(workloadNetns(prefix, i));
  clean = await Promise.all(host1Netns().map(netnsSnapshot));
  // Host 2 is the stable far end for every round.
  await forwarderFor(prefix, 2, { stateDir: join(tmp, 'state-2'), logDir: tmp }).forwarder.adopt(
    desiredFor(prefix, 2, keys),
  );
});

test.after.always(async () => {
  if (!isRoot) return;
  await testbedDown(prefix);
  await rm(tmp, { recursive: true, force: true });
});

interface Child {
  readonly pid: number;
  readonly output: () => string;
  readonly exited: Promise<NodeJS.Signals | number | null>;
}

/** Children still running, stopped by pid whatever way a test ends. */
const running = new Set<number>();

test.afterEach.always(() => {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  running.clear();
});

/** Starts the child agent for host 1; resolves once it printed READY or died. */
async function startChild(crashAfter?: number, viaEntries = false): Promise<Child> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/e2e/forwarder-child.ts', prefix, '1', state1(), tmp],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...(crashAfter === undefined ? {} : { NSM_FORWARDER_CRASH_AFTER: String(crashAfter) }),
        ...(viaEntries ? { NSM_FORWARDER_VIA_ENTRIES: '1' } : {}),
      },
    },
  );
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  child.stdin.end(JSON.stringify(keys));
  let out = '';
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      if (pid !== undefined) running.delete(pid);
      resolve(signal ?? code);
    });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`child neither READY nor dead in 30 s: ${out}`));
    }, 30_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (crashAfter !== undefined && out.includes('READY')) {
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
    throw new Error(`the child finished apply() without reaching crash point ${crashAfter}: ${out}`);
  }
  return { pid: pid ?? 0, output: () => out, exited };
}

async function leftovers(): Promise<{
  netns: NetnsSnapshot[];
  proxies: string;
  wireguardGo: string[];
  sockets: string[];
}> {
  const h1 = bed.hosts[0]!;
  return {
    netns: await Promise.all(host1Netns().map(netnsSnapshot)),
    proxies: (await runner.runChecked(['ip', '-n', h1.netns, 'neigh', 'show', 'proxy'])).stdout.trim(),
    wireguardGo: (await listWireGuardGoProcesses())
      .filter((p) => p.device === h1.wgDevice)
      .map((p) => p.device),
    sockets: (await readdir(defaultSocketDir).catch(() => [] as string[])).filter((f) =>
      f.startsWith(h1.wgDevice),
    ),
  };
}

async function pingsPass(interval = '0.2', count = 3): Promise<string[]> {
  const r = await Promise.all([
    runner.run(['ping', '-c', String(count), '-i', interval, '-W', '3', hostAddr(2)], {
      netns: bed.hosts[0]!.netns,
      timeoutMs: 30_000,
    }),
    runner.run(['ping', '-c', String(count), '-i', interval, '-W', '3', podAddr(2)], {
      netns: workloadNetns(prefix, 1),
      timeoutMs: 30_000,
    }),
  ]);
  return r.map((x) => x.stdout.trim().split('\n').slice(-2).join(' '));
}

serial(
  'SIGKILL after each step of apply(): adopt(empty) leaves nothing, adopt(original) converges',
  async (t) => {
    t.timeout(600_000);
    // The steps of a full apply on host 1, counted in process.
    const names: string[] = [];
    let counting = true;
    const counter = forwarderFor(prefix, 1, {
      stateDir: state1(),
      logDir: tmp,
      onStep: (s) => {
        if (counting) names.push(s.name);
      },
    });
    await counter.forwarder.adopt(desiredFor(prefix, 1, keys));
    counting = false;
    await counter.forwarder.apply(emptyDesiredState);
    t.deepEqual(await leftovers(), { netns: clean, proxies: '', wireguardGo: [], sockets: [] });
    t.log(`${names.length} steps: ${names.join(' | ')}`);

    for (let k = 0; k < names.length; k++) {
      // Killed after step k, then a fresh start that wants nothing.
      let child = await startChild(k);
      t.is(await child.exited, 'SIGKILL', child.output());
      const empty = forwarderFor(prefix, 1, { stateDir: state1(), logDir: tmp });
      await empty.forwarder.adopt(emptyDesiredState);
      t.deepEqual(
        await leftovers(),
        { netns: clean, proxies: '', wireguardGo: [], sockets: [] },
        `after a kill at step ${k} (${names[k]})`,
      );

      // Killed after step k, then a fresh start that wants the original state.
      child = await startChild(k);
      t.is(await child.exited, 'SIGKILL');
      const again = forwarderFor(prefix, 1, { stateDir: state1(), logDir: tmp });
      await again.forwarder.adopt(desiredFor(prefix, 1, keys));
      for (const p of await pingsPass())
        t.regex(p, / 0% packet loss/, `after a kill at step ${k} (${names[k]}): ${p}`);
      again.runner.lines.length = 0;
      t.deepEqual((await again.forwarder.apply(desiredFor(prefix, 1, keys))).ops, []);
      t.deepEqual(again.runner.mutations, []);
      await again.forwarder.apply(emptyDesiredState);
    }
    t.deepEqual(await leftovers(), { netns: clean, proxies: '', wireguardGo: [], sockets: [] });
  },
);

serial(
  'SIGKILL after each step of a setEntries() apply planned without reading the host: adopt(empty) leaves nothing, adopt(original) converges',
  async (t) => {
    t.timeout(600_000);
    const desired = desiredFor(prefix, 1, keys);
    const deviceOnly = { ...(desired.device === undefined ? {} : { device: desired.device }), entries: {} };
    const names: string[] = [];
    let counting = false;
    const counter = forwarderFor(prefix, 1, {
      stateDir: state1(),
      logDir: tmp,
      onStep: (s) => {
        if (counting) names.push(s.name);
      },
    });
    await counter.forwarder.adopt(deviceOnly);
    counting = true;
    const reads = counter.runner.lines.length;
    await counter.forwarder.setEntries(new Map(Object.entries(desired.entries)));
    counting = false;
    t.false(
      counter.runner.lines.slice(reads).some((l) => / show( |$)/.test(l)),
      'the apply of the entries did not read the host',
    );
    await counter.forwarder.apply(emptyDesiredState);
    t.deepEqual(await leftovers(), { netns: clean, proxies: '', wireguardGo: [], sockets: [] });
    t.log(`${names.length} steps: ${names.join(' | ')}`);

    for (let k = 0; k < names.length; k++) {
      let child = await startChild(k, true);
      t.is(await child.exited, 'SIGKILL', child.output());
      const empty = forwarderFor(prefix, 1, { stateDir: state1(), logDir: tmp });
      await empty.forwarder.adopt(emptyDesiredState);
      t.deepEqual(
        await leftovers(),
        { netns: clean, proxies: '', wireguardGo: [], sockets: [] },
        `after a kill at step ${k} (${names[k]})`,
      );

      child = await startChild(k, true);
      t.is(await child.exited, 'SIGKILL');
      const again = forwarderFor(prefix, 1, { stateDir: state1(), logDir: tmp });
      await again.forwarder.adopt(desired);
      for (const p of await pingsPass())
        t.regex(p, / 0% packet loss/, `after a kill at step ${k} (${names[k]}): ${p}`);
      again.runner.lines.length = 0;
      t.deepEqual((await again.forwarder.apply(desired)).ops, []);
      t.deepEqual(again.runner.mutations, []);
      await again.forwarder.apply(emptyDesiredState);
    }
    t.deepEqual(await leftovers(), { netns: clean, proxies: '', wireguardGo: [], sockets: [] });
  },
);

serial('a ping every 10 ms loses nothing while the agent is killed and a new forwarder adopts', async (t) => {
  t.timeout(120_000);
  const child = await startChild();
  t.regex(child.output(), /READY/);
  const h1 = bed.hosts[0]!;
  const pidsBefore = (await listWireGuardGoProcesses())
    .filter((p) => p.device === h1.wgDevice)
    .map((p) => p.pid);
  t.is(pidsBefore.length, 1);
  await pingsPass(); // handshake done before the clock starts

  const pings = pingsPass('0.01', 300);
  await new Promise((r) => setTimeout(r, 500));
  process.kill(child.pid, 'SIGKILL');
  t.is(await child.exited, 'SIGKILL');
  const next = forwarderFor(prefix, 1, { stateDir: state1(), logDir: tmp });
  const r = await next.forwarder.adopt(desiredFor(prefix, 1, keys));
  t.deepEqual(r.ops, [], 'nothing recreated');
  t.deepEqual(next.runner.mutations, []);
  t.deepEqual(next.wireguard.mutations, []);
  for (const p of await pings) {
    t.regex(p, /300 packets transmitted, 300 received, 0% packet loss/, p);
    t.log(p);
  }
  const pidsAfter = (await listWireGuardGoProcesses())
    .filter((p) => p.device === h1.wgDevice)
    .map((p) => p.pid);
  t.deepEqual(pidsAfter, pidsBefore, 'the same wireguard-go process');

  await next.forwarder.apply(emptyDesiredState);
  t.deepEqual(await leftovers(), { netns: clean, proxies: '', wireguardGo: [], sockets: [] });
  await testbedDown(prefix);
  // Only the root netns' links and this test's names: other suites (benchmarks) start and stop
  // their own wireguard-go devices on this machine meanwhile.
  t.deepEqual((await hostSnapshot()).rootLinks, before.rootLinks);
  t.deepEqual(await hostSnapshot(prefix), { netns: [], wireguardGo: [], sockets: [], rootLinks: [] });
});
