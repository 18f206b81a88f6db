// The agent's own buffer sizing on a real wireguard-go in a netns: after ensureDevice its UDP sockets
// have the forced size as the kernel reports it (`ss -m`: skmem rb), again after a listen-port change
// and after wireguard-go rebinds behind the agent's back and a new agent adopts the device.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ProcessRunner } from '../../../src/host/command-runner.js';
import { defaultUdpBufferBytes } from '../../../src/host/socket-buffers/index.js';
import {
  UserspaceWireGuard,
  generatePrivateKey,
  listWireGuardGoProcesses,
} from '../../../src/host/wireguard/index.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const netns = 'nsmub-1';
const dev = 'nsmub-wg0';
const root = fileURLToPath(new URL('../../../', import.meta.url));

test.before(() => {
  // dist/native/udp-socket-buffers.node, where UserspaceWireGuard looks when run from the sources.
  if (isRoot) execFileSync(process.execPath, ['packaging/build-native.mjs'], { cwd: root });
});

test.after.always(async () => {
  if (!isRoot) return;
  await runner.run(['ip', '-n', netns, 'link', 'del', 'dev', dev]);
  await runner.run(['ip', 'netns', 'del', netns]);
});

/** rb of each UDP socket bound to `port` in the netns, from `ss -u -a -n -m`. */
async function ssReceiveBuffers(port: number): Promise<number[]> {
  const r = await runner.runChecked(['ss', '-u', '-a', '-n', '-m', 'sport', '=', `:${port}`], { netns });
  return [...r.stdout.matchAll(/skmem:\([^)]*\brb(\d+)/g)].map((m) => Number(m[1]));
}

serial(
  'wireguard-go started by UserspaceWireGuard gets 4 MiB UDP buffers, kept across rebinds',
  async (t) => {
    const logDir = await mkdtemp(join(tmpdir(), 'nsm-ub-'));
    t.teardown(() => rm(logDir, { recursive: true, force: true }));
    await runner.run(['ip', 'netns', 'del', netns]);
    await runner.runChecked(['ip', 'netns', 'add', netns]);
    await runner.runChecked(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    const forced = 2 * defaultUdpBufferBytes; // the kernel reports twice the value set
    const key = generatePrivateKey();
    const wg = new UserspaceWireGuard({ runner, netns, logDir });
    t.teardown(() => wg.deleteDevice(dev));

    await wg.ensureDevice(dev, { privateKey: key, listenPort: 51890 });
    t.deepEqual(await ssReceiveBuffers(51890), [forced, forced], 'IPv4 and IPv6 socket');
    t.deepEqual(
      (await wg.udpSocketBuffers(dev))?.map((s) => s.rcvbuf),
      [forced, forced],
    );
    // Every thread on SCHED_BATCH (policy 3 in /proc/<pid>/task/<tid>/sched).
    const pid = (await listWireGuardGoProcesses()).find((p) => p.device === dev)?.pid ?? 0;
    const policies = await Promise.all(
      (await readdir(`/proc/${pid}/task`)).map(
        async (tid) =>
          /^policy\s*:\s*(\d+)/m.exec(await readFile(`/proc/${pid}/task/${tid}/sched`, 'utf8'))?.[1],
      ),
    );
    t.true(policies.length > 1 && policies.every((p) => p === '3'), policies.join(','));

    // A new listen port: wireguard-go closes its sockets and opens new ones with default buffers.
    await wg.ensureDevice(dev, { privateKey: key, listenPort: 51891 });
    t.deepEqual(await ssReceiveBuffers(51891), [forced, forced], 'after a listen-port change');

    // A port change behind the agent's back (wg set) rebinds with default buffers; a restarted agent
    // adopts the running device and sizes them again.
    await runner.runChecked(['wg', 'set', dev, 'listen-port', '51893'], { netns });
    let before: number[] = [];
    for (let i = 0; i < 100 && before.length < 2; i++) {
      before = await ssReceiveBuffers(51893);
      if (before.length < 2) await new Promise((r) => setTimeout(r, 20));
    }
    t.true(
      before.length === 2 && before.every((rb) => rb < forced),
      `default buffers after the rebind: ${before.join(',')}`,
    );
    const adopter = new UserspaceWireGuard({ runner, netns, logDir });
    await adopter.ensureDevice(dev, { privateKey: key, listenPort: 51891 });
    t.deepEqual(await ssReceiveBuffers(51891), [forced, forced], 'after adoption');
  },
);

serial('udpBufferBytes 0: wireguard-go keeps its default buffers', async (t) => {
  const logDir = await mkdtemp(join(tmpdir(), 'nsm-ub-'));
  t.teardown(() => rm(logDir, { recursive: true, force: true }));
  await runner.run(['ip', 'netns', 'add', netns]);
  const wg = new UserspaceWireGuard({ runner, netns, logDir, udpBufferBytes: 0 });
  t.teardown(() => wg.deleteDevice(dev));
  await wg.ensureDevice(dev, { privateKey: generatePrivateKey(), listenPort: 51892 });
  let rbs: number[] = [];
  for (let i = 0; i < 100 && rbs.length < 2; i++) {
    rbs = await ssReceiveBuffers(51892);
    if (rbs.length < 2) await new Promise((r) => setTimeout(r, 20));
  }
  t.is(rbs.length, 2);
  t.true(
    rbs.every((rb) => rb < 2 * defaultUdpBufferBytes),
    rbs.join(','),
  );
});
