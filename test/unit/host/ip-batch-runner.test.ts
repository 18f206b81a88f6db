// The kept `ip -json -batch -` processes (src/host/ip-batch-runner.ts). Without root: which commands
// go to a kept process and how a request's output is cut at the marker. As root, with the real `ip`
// in netns the tests make and remove: every request gives what its own `ip` process gives (stdout,
// stderr, exit code), an error in the middle of a batch, a process killed between or during
// requests, a timeout, a netns deleted while its process runs in it, close(), and a process whose
// agent is killed with SIGKILL.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ProcessRunner } from '../../../src/host/command-runner.js';
import type { RunResult } from '../../../src/host/command-runner.js';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import { processExists as alive } from '../../../src/host/detached-process.js';
import { IpBatchRunner, MarkerScanner, batchTarget } from '../../../src/host/ip-batch-runner.js';
import { Ip } from '../../../src/host/ip/index.js';
import { Netns } from '../../../src/host/netns.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const oneShot = new ProcessRunner();
const ns = 'nsmipb-1';
const ns2 = 'nsmipb-2';
const argv = ['ip', '-n', ns, '-json', '-batch', '-'];
const read = 'addr show\nroute show table all proto 199\nneigh show proxy\n';

test('which commands a kept process takes: ip [-n N] [-json] -batch - with input, nothing else', (t) => {
  t.deepEqual(batchTarget(['ip', '-json', '-batch', '-']), { json: true });
  t.deepEqual(batchTarget(['ip', '-n', 'h1', '-batch', '-']), { netns: 'h1', json: false });
  t.is(batchTarget(['ip', '-force', '-batch', '-']), undefined);
  t.is(batchTarget(['ip', '-json', 'addr', 'show']), undefined);
  t.is(batchTarget(['nsenter', '--net=/proc/1/ns/net', 'ip', '-json', '-batch', '-']), undefined);
});

test('closed, or for commands it does not take, it runs them as the inner runner does', async (t) => {
  const inner = new RecordingRunner().on(/./, { stdout: 'x' });
  const r = new IpBatchRunner({ inner });
  await r.run(['ip', 'link', 'set', 'dev', 'x', 'up']);
  await r.run(['ip', '-force', '-batch', '-'], { input: 'route del 10.0.0.0/8\n' });
  // Without -json a listing would print JSON where text is expected: not through the kept process.
  await r.run(['ip', '-batch', '-'], { input: 'addr show\n' });
  // A netconf listing would look like the marker.
  await r.run(['ip', '-json', '-batch', '-'], { input: 'netconf show\n' });
  await r.close();
  await r.run(['ip', '-json', '-batch', '-'], { input: 'addr show\n' });
  t.deepEqual(
    inner.transcript.map((a) => a.join(' ')),
    ['ip link set dev x up', 'ip -force -batch -', 'ip -batch -', 'ip -json -batch -', 'ip -json -batch -'],
  );
  t.deepEqual(r.pids, []);
});

test('the marker line ends a request wherever the chunks split, and no other line does', (t) => {
  const marker = '[{"family":"inet","interface":"lo","forwarding":false}]\n';
  const body = '[{"ifindex":1,"ifname":"lo"}]\n[]\n[{"family":"x"}]\n[{"fam\n';
  for (const size of [1, 2, 3, 7, 1000]) {
    const text = Buffer.from(body + marker);
    const scanner = new MarkerScanner();
    const out: Buffer[] = [];
    let ended = -1;
    for (let i = 0; i < text.length && ended < 0; i += size) {
      if (scanner.feed(text.subarray(i, i + size), (b) => out.push(Buffer.from(b)))) ended = i;
    }
    t.is(Buffer.concat(out).toString(), body, `chunks of ${size}`);
    t.true(ended >= body.length - size, `chunks of ${size}`);
  }
});

const ipNs = (name: string, ...words: string[]): Promise<RunResult> =>
  oneShot.runChecked(['ip', '-n', name, ...words]);

async function gone(pid: number, ms = 3_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (!alive(pid)) return true;
    await sleep(20);
  }
  return !alive(pid);
}

test.before(async () => {
  if (!isRoot) return;
  for (const n of [ns, ns2]) {
    await new Netns(oneShot).delete(n);
    await new Netns(oneShot).create(n);
    await ipNs(n, 'link', 'set', 'lo', 'up');
    // No IPv6 duplicate address detection: a link-local address read as "tentative" by one process
    // and not by the next (DAD ending between the two reads) is not a difference between runners.
    await oneShot.runChecked([
      'ip',
      'netns',
      'exec',
      n,
      'sh',
      '-c',
      'echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad',
    ]);
  }
  await ipNs(ns, 'link', 'add', 'nsmipb0', 'type', 'veth', 'peer', 'name', 'eth1');
  await ipNs(ns, 'link', 'set', 'nsmipb0', 'up');
  await ipNs(ns, 'link', 'set', 'eth1', 'up');
  await ipNs(ns, 'addr', 'add', '10.66.0.1/24', 'dev', 'eth1');
});

test.after.always(async () => {
  if (!isRoot) return;
  for (const n of [ns, ns2]) await new Netns(oneShot).delete(n);
});

serial('many changes and reads through one process give what one process per batch gives', async (t) => {
  const r = new IpBatchRunner({ inner: oneShot });
  try {
    const pids = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const change = [
        `route replace 10.67.${i}.0/24 dev eth1 proto 199`,
        `neigh replace proxy 10.66.0.${i + 10} dev nsmipb0`,
        ...(i % 3 === 2 ? [`route del 10.67.${i - 1}.0/24 dev eth1 proto 199`] : []),
      ].join('\n');
      t.deepEqual(await r.run(argv, { input: `${change}\n` }), { stdout: '', stderr: '', code: 0 });
      const kept = await r.run(argv, { input: read });
      t.deepEqual(kept, await oneShot.run(argv, { input: read }), `read ${i}`);
      pids.add(r.pids[0] ?? 0);
    }
    t.is(pids.size, 1, 'one process served them all');
    const routes = JSON.parse((await ipNs(ns, '-json', 'route', 'show', 'proto', '199')).stdout) as unknown[];
    t.is(routes.length, 40 - 13);
  } finally {
    await r.close();
  }
});

serial(
  'an error in the middle of a batch: the same error as its own process, the lines after it not run',
  async (t) => {
    const r = new IpBatchRunner({ inner: oneShot });
    try {
      await r.run(argv, { input: read });
      const [pid] = r.pids;
      const failing = [
        ['route', 'replace', '10.68.1.0/24', 'dev', 'eth1', 'proto', '199'],
        ['route', 'del', '10.68.99.0/24', 'dev', 'eth1', 'proto', '199'],
        ['route', 'replace', '10.68.3.0/24', 'dev', 'eth1', 'proto', '199'],
      ];
      const kept = await new Ip(r, { netns: ns }).batch(failing).catch((e: unknown) => e as Error);
      const routes = (await ipNs(ns, 'route', 'show', 'proto', '199')).stdout;
      t.regex(routes, /10\.68\.1\.0/);
      t.notRegex(routes, /10\.68\.3\.0/, 'the line after the failed one did not run');
      await ipNs(ns, 'route', 'del', '10.68.1.0/24', 'dev', 'eth1', 'proto', '199');
      const own = await new Ip(oneShot, { netns: ns }).batch(failing).catch((e: unknown) => e as Error);
      t.true(kept instanceof Error);
      t.is((kept as Error).message, (own as Error).message);
      t.regex((kept as Error).message, /at line 2 \(route del 10\.68\.99\.0\/24/);
      // The raw result too, after requests that moved the process' line count on.
      await r.run(argv, { input: read });
      await r.run(argv, { input: read });
      const script = 'route replace 10.68.5.0/24 dev eth1 proto 199\nroute del 10.68.98.0/24 dev eth1\n';
      const a = await r.run(argv, { input: script });
      t.deepEqual(a, await oneShot.run(argv, { input: script }));
      t.is(a.code, 1);
      t.not(r.pids[0], pid);
      t.deepEqual(
        await r.run(argv, { input: read }),
        await oneShot.run(argv, { input: read }),
        'the next one works',
      );
      await ipNs(ns, 'route', 'del', '10.68.5.0/24', 'dev', 'eth1', 'proto', '199');
    } finally {
      await r.close();
    }
  },
);

serial(
  'a process killed between requests, or during one, is replaced; a read is retried, a change fails',
  async (t) => {
    const r = new IpBatchRunner({ inner: oneShot });
    try {
      await r.run(argv, { input: read });
      const first = r.pids[0] ?? 0;
      process.kill(first, 'SIGKILL');
      t.true(await gone(first));
      t.deepEqual(await r.run(argv, { input: read }), await oneShot.run(argv, { input: read }));
      const second = r.pids[0] ?? 0;
      t.not(second, first);

      // Stopped, so the request is surely in flight when the process dies.
      process.kill(second, 'SIGSTOP');
      const reading = r.run(argv, { input: read });
      await sleep(50);
      process.kill(second, 'SIGKILL');
      t.deepEqual(await reading, await oneShot.run(argv, { input: read }), 'the read ran again');

      const third = r.pids[0] ?? 0;
      process.kill(third, 'SIGSTOP');
      const changing = r.run(argv, { input: 'route replace 10.69.0.0/24 dev eth1 proto 199\n' });
      await sleep(50);
      process.kill(third, 'SIGKILL');
      const changed = await changing;
      t.is(changed.code, 1);
      t.regex(changed.stderr, /ended before it finished the request/);
      t.deepEqual(await r.run(argv, { input: read }), await oneShot.run(argv, { input: read }));
    } finally {
      await r.close();
    }
  },
);

serial('a link made again under its name: the kept process answers as a new process would', async (t) => {
  const r = new IpBatchRunner({ inner: oneShot });
  const remake = async (): Promise<void> => {
    await oneShot.run(['ip', '-n', ns, 'link', 'del', 'nsmipb2']);
    await ipNs(ns, 'link', 'add', 'nsmipb2', 'type', 'veth', 'peer', 'name', 'nsmipb3');
    await ipNs(ns, 'link', 'set', 'nsmipb2', 'up');
  };
  try {
    await remake();
    // The process learns the link's index (a listing, and a change naming it) ...
    await r.run(argv, { input: read });
    t.is((await r.run(argv, { input: 'addr replace 10.70.0.1/32 dev nsmipb2\n' })).code, 0);
    const pid = r.pids[0];
    // ... and the link is made again under the same name, with another index.
    await remake();
    const script = [
      'route replace 10.71.0.0/24 dev eth1 proto 199',
      'addr replace 10.70.0.2/32 dev nsmipb2',
      'route replace 10.72.0.0/24 dev nsmipb2 proto 199',
      'neigh replace proxy 10.70.0.9 dev nsmipb2',
      'route del 10.99.0.0/24 dev nsmipb2',
    ].join('\n');
    const kept = await r.run(argv, { input: `${script}\n` });
    t.not(r.pids[0], pid);
    t.regex((await ipNs(ns, 'addr', 'show', 'dev', 'nsmipb2')).stdout, /10\.70\.0\.2\/32/);
    t.regex((await ipNs(ns, 'route', 'show', 'proto', '199')).stdout, /10\.72\.0\.0\/24 dev nsmipb2/);
    t.regex((await ipNs(ns, 'neigh', 'show', 'proxy')).stdout, /10\.70\.0\.9 dev nsmipb2/);
    // The same lines in a new process: the same failure, at the same line.
    await remake();
    t.deepEqual(kept, await oneShot.run(argv, { input: `${script}\n` }));
    t.regex(kept.stderr, /Command failed -:5/);
  } finally {
    await r.close();
    await oneShot.run(['ip', '-n', ns, 'link', 'del', 'nsmipb2']);
    await oneShot.run(['ip', '-n', ns, 'route', 'del', '10.71.0.0/24']);
  }
});

serial('a request that does not finish in time is killed as its own process would be', async (t) => {
  const r = new IpBatchRunner({ inner: oneShot });
  try {
    await r.run(argv, { input: read });
    const pid = r.pids[0] ?? 0;
    // `monitor` never returns.
    const hung = await r.run(argv, { input: 'monitor link\n', timeoutMs: 300 });
    t.deepEqual(hung, await oneShot.run(argv, { input: 'monitor link\n', timeoutMs: 300 }));
    t.is(hung.code, 137);
    t.true(await gone(pid));
    t.deepEqual(await r.run(argv, { input: read }), await oneShot.run(argv, { input: read }));
  } finally {
    await r.close();
  }
});

serial(
  'a netns deleted while its process runs in it reads as gone, and the process lets it go',
  async (t) => {
    const r = new IpBatchRunner({ inner: oneShot });
    const argv2 = ['ip', '-n', ns2, '-json', '-batch', '-'];
    try {
      // A veth from ns into ns2: it goes away when ns2 is really gone (no process left in it).
      await ipNs(ns, 'link', 'add', 'nsmipb1', 'type', 'veth', 'peer', 'name', 'eth2', 'netns', ns2);
      await r.run(argv2, { input: read });
      await r.run(argv2, { input: read });
      const pid = r.pids[0] ?? 0;
      await new Netns(oneShot).delete(ns2);
      // No request needed: the watch on /var/run/netns stops the process, and the netns goes.
      t.true(await gone(pid), 'the process in the deleted netns exited');
      let left = true;
      for (let i = 0; i < 100 && left; i++) {
        left = (await oneShot.run(['ip', '-n', ns, 'link', 'show', 'dev', 'nsmipb1'])).code === 0;
        if (left) await sleep(30);
      }
      t.false(left, 'the veth went with the netns');
      const kept = await r.run(argv2, { input: read });
      t.deepEqual(kept, await oneShot.run(argv2, { input: read }));
      t.regex(kept.stderr, /Cannot open network namespace/);
    } finally {
      await r.close();
      await new Netns(oneShot).delete(ns2);
      await new Netns(oneShot).create(ns2);
    }
  },
);

serial(
  'a named netns process stops when idle; close() stops them all and later batches still run',
  async (t) => {
    const r = new IpBatchRunner({ inner: oneShot, idleMs: 200 });
    await r.run(argv, { input: read });
    const idle = r.pids[0] ?? 0;
    t.true(await gone(idle, 2_000));
    t.deepEqual(r.pids, []);
    await r.run(argv, { input: read });
    await r.run(['ip', '-n', ns2, '-json', '-batch', '-'], { input: read });
    const pids = r.pids;
    t.is(pids.length, 2);
    await r.close();
    for (const pid of pids) t.false(alive(pid));
    t.deepEqual(await r.run(argv, { input: read }), await oneShot.run(argv, { input: read }));
    t.deepEqual(r.pids, []);
  },
);

serial('the agent killed with SIGKILL: its kept ip process exits by itself', async (t) => {
  // A node process with a kept process in its own netns (a read only), killed without warning.
  const code = [
    `import { IpBatchRunner } from ${JSON.stringify(new URL('../../../src/host/ip-batch-runner.ts', import.meta.url).pathname)};`,
    `import { ProcessRunner } from ${JSON.stringify(new URL('../../../src/host/command-runner.ts', import.meta.url).pathname)};`,
    `const r = new IpBatchRunner({ inner: new ProcessRunner() });`,
    `const res = await r.run(['ip', '-json', '-batch', '-'], { input: 'addr show dev lo\\n' });`,
    `console.log(JSON.stringify({ pid: r.pids[0], code: res.code }));`,
    `setInterval(() => undefined, 1000);`,
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve(out);
      });
      child.on('exit', () => reject(new Error(`child exited: ${out}`)));
      setTimeout(() => reject(new Error('no answer from the child in 20 s')), 20_000).unref();
    });
    const { pid, code: rc } = JSON.parse(line) as { pid: number; code: number };
    t.is(rc, 0);
    t.true(alive(pid));
    process.kill(child.pid ?? 0, 'SIGKILL');
    t.true(await gone(pid), 'ip read end-of-file and exited');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
