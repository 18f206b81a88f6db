// Liveness prober benchmark (issue 5's idle-CPU target): the CPU the ICMP liveness prober
// (src/host/liveness) costs its process with N watches at 1 s, side by side in one run (windows
// alternate, the order flipped every rep). Two modes:
//   --mode versions (default): today's code against an older commit's (--old);
//     --grouped: the N watches of both in one group (LivenessTarget.group), as the daemon's
//     connections to one remote agent;
//   --mode group: today's code, the N watches in one group (LivenessTarget.group: one remote agent)
//     against the same N ungrouped; what grouping saves is echoes, so this mode is about the kernel
//     and the far end's share (system time, echoes/s), not the JS.
//   flock /tmp/nsm-bench.lock node --import tsx bench/liveness.ts [--mode versions|group]
//     [--sizes 200,1000] [--seconds 20] [--reps 2] [--old 130b19f] [--interval-ms 1000]
//     [--v8 daemon,full | --node-flags "…"] [--grouped] [--netns path|own]
// (no npm script). Needs root, ip, gcc, python3. Each window is its own process, `node FLAGS window.mjs`,
// whatever V8 mode the bench itself runs in. --v8 names the modes, each compared side by side:
//   daemon (default): the flags `nsm-agent run` uses (src/cli/daemon-memory.ts: V8 interpreter
//     only, small young generation): --no-opt --no-maglev --max-semi-space-size=4 --heap-growing-percent=30;
//   full: the same memory flags with V8's optimising compilers (Maglev, TurboFan) on.
// --node-flags "…" runs one mode with exactly those flags instead.
// It runs an esbuild bundle of the prober, built as the binary's (whitespace and syntax minified,
// keepNames: every closure made at run time pays esbuild's __name; no tsx in the measured process).
// Test bed: netns nsmbliv-<pid> with a tun device (10.77.0.1/24, route 10.78.0.0/16 into it) whose
// other end is a python3 process answering every echo request: the echoes' way back costs that
// process, as wireguard-go pays for it in the agent (a veth peer would answer in the prober's own
// context and bill it the peer's kernel work). Every watch pings its own 10.78.x.y from 10.77.0.1.
// --netns path (default): the window runs in the host netns and its targets name the bed's netns
// (a socket opened by setns, as for a workload's netns); own: the window runs in the bed's netns
// and its targets have none (the agent's own netns, as the daemon's connections without --netns).
// The old code: `git archive <old> src packaging package.json tsconfig.json` into a temp dir (this
// checkout's node_modules linked in), bundled there and run with its own addon built there.
// Per window: a prober, N watches, 5 s to settle (socket, first rounds), then process.cpuUsage()
// (user + system: the kernel's work for the sends and the tun device is billed to the prober)
// over --seconds; windows with no prober give the process's own floor (subtracted), and windows
// with only an empty timer at the interval what the wake-ups alone cost ("timer only": on a VM
// a wake-up costs milliseconds, a share of a round no prober code can save). Printed: user and system
// CPU ms per second and µs per watch per tick (floor subtracted), and echo replies per second (the
// test bed netns's Icmp InEchoReps over the window, read outside the measured CPU) and the echo
// responder's on-CPU time (/proc/PID/schedstat): the far end's share per echo. The total is exact (the kernel's
// runtime); its user/system split is sampled at the scheduler tick, so it is rough at these loads.
// A watch that went dead fails the window. At 1 s a window's CPU is small against the process's own
// noise (a memory-reducing GC is milliseconds); --interval-ms 50 runs 20 rounds a second so the
// per-round and per-watch costs stand out (the python responder keeps up with a few thousand echoes/s).
// Cleanup on every way out: responder stopped by pid, netns deleted, temp dir removed (bench/lib/cleanup.ts).
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWithCleanup } from './lib/cleanup.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tag = String(process.pid % 100_000);
const ns = `nsmbliv-${tag}`;
const tun = `nblvt${tag}`;
const settleMs = 5000;
const memoryFlags = '--max-semi-space-size=4 --heap-growing-percent=30';
const v8Modes: Record<string, string> = { daemon: `--no-opt --no-maglev ${memoryFlags}`, full: memoryFlags };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const mode = arg('--mode', 'versions');
const sizes = arg('--sizes', mode === 'group' ? '200' : '200,1000')
  .split(',')
  .map((s) => Number(s));
const seconds = Number(arg('--seconds', '20'));
const reps = Number(arg('--reps', '2'));
const oldRev = arg('--old', '130b19f');
const grouped = process.argv.includes('--grouped');
const ownNetns = arg('--netns', 'path') === 'own';
const intervalMs = Number(arg('--interval-ms', '1000'));
const customFlags = process.argv.includes('--node-flags') ? arg('--node-flags', '') : undefined;
/** The V8 modes every implementation runs in: name and node flags. */
const modes: { name: string; flags: string[] }[] = (
  customFlags === undefined
    ? arg('--v8', 'daemon')
        .split(',')
        .map((name) => ({ name, flags: v8Modes[name] }))
    : [{ name: 'custom', flags: customFlags }]
).map(({ name, flags }) => {
  if (flags === undefined) throw new Error(`--v8 ${name}: not one of ${Object.keys(v8Modes).join(', ')}`);
  return { name, flags: flags.split(/\s+/).filter(Boolean) };
});
if (
  sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 60_000) ||
  !(seconds > 0) ||
  !(reps >= 1) ||
  !(intervalMs >= 10) ||
  (mode !== 'versions' && mode !== 'group') ||
  !['path', 'own'].includes(arg('--netns', 'path'))
) {
  throw new Error(
    'usage: --mode versions|group --sizes N[,N…] (1…60000) --seconds S --reps R --old REV --interval-ms MS (>= 10) --v8 daemon,full | --node-flags "FLAGS" --grouped --netns path|own',
  );
}

/** One window, in its own process: load a prober bundle, watch N targets, settle, measure. */
const windowScript = `
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const [bundle, addon, n, seconds, settleMs, netns, ifName, group, responderPid, inside, wake] = process.argv.slice(2);
// On-CPU time of the echo responder (it stands for the far end's wireguard-go), in ms: schedstat,
// exact where utime/stime are 10 ms ticks (a window's responder work is a few ticks).
const responderMs = () => Number(readFileSync('/proc/' + responderPid + '/schedstat', 'utf8').split(' ')[0]) / 1e6;
const echoReplies = () => {
  const snmp = execFileSync('ip', ['netns', 'exec', netns.split('/').pop(), 'cat', '/proc/net/snmp'], { encoding: 'utf8' });
  const [names, values] = snmp.split('\\n').filter((l) => l.startsWith('Icmp:')).map((l) => l.split(/\\s+/));
  return Number(values[names.indexOf('InEchoReps')]);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let prober;
let dead = 0;
let firstDead = '';
if (Number(n) > 0) {
  const { icmpLivenessProber } = createRequire(import.meta.url)(bundle);
  prober = icmpLivenessProber({ intervalMs: ${intervalMs}, misses: 3, native: { path: addon } });
  for (let i = 0; i < Number(n); i++) {
    const dst = '10.78.' + Math.floor(i / 250) + '.' + ((i % 250) + 1);
    const target = { netns: inside ? undefined : netns, ifName, src: '10.77.0.1', dst, ...(group ? { group } : {}) };
    prober.watch(target, { dead: (r) => { dead++; firstDead ||= r; } });
  }
} else if (wake) {
  setInterval(() => undefined, ${intervalMs}).unref();
}
await sleep(Number(settleMs));
const replies0 = echoReplies();
const responder0 = responderMs();
const start = process.cpuUsage();
const t0 = performance.now();
await sleep(Number(seconds) * 1000);
const used = process.cpuUsage(start);
const elapsed = (performance.now() - t0) / 1000;
const responder = responderMs() - responder0;
const replies = echoReplies() - replies0;
prober?.close();
process.stdout.write(JSON.stringify({ userMs: used.user / 1000, systemMs: used.system / 1000, seconds: elapsed, replies, responder, dead, firstDead }));
`;

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 120_000,
    maxBuffer: 64 << 20,
  });
}

/**
 * Answers every echo request the tun device carries (swaps the addresses, type 8 -> 0), in its own
 * process, so the echo's way back costs that process (as wireguard-go pays for it in the agent),
 * not the prober's.
 */
const responderScript = String.raw`
import fcntl, os, struct, sys
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', sys.argv[1].encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN | IFF_NO_PI
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
print('ready', flush=True)
while True:
    p = bytearray(os.read(fd, 4096))
    if len(p) < 28 or p[0] >> 4 != 4 or p[9] != 1: continue
    ihl = (p[0] & 15) * 4
    if p[ihl] != 8: continue
    p[12:16], p[16:20] = p[16:20], p[12:16]
    p[ihl] = 0
    p[ihl + 2:ihl + 4] = b'\0\0'
    p[ihl + 2:ihl + 4] = struct.pack('!H', csum(bytes(p[ihl:])))
    os.write(fd, p)
`;

let responder: ChildProcess | undefined;

async function bedUp(): Promise<void> {
  bedDown();
  run('ip', ['netns', 'add', ns]);
  responder = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', responderScript, tun], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const child = responder;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the echo responder did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`the echo responder exited (${code ?? 'signal'})`)));
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  run('ip', ['-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', tun]);
  // A deep queue: the python responder may fall behind a round on a busy machine, and drops would
  // fail the window rather than measure the prober.
  run('ip', ['-n', ns, 'link', 'set', tun, 'txqueuelen', '16384', 'up']);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  run('ip', ['-n', ns, 'route', 'add', '10.78.0.0/16', 'dev', tun]);
}

/** The echo responder's pid: `ip netns exec` execs python3 in its own process. */
function responderPid(): number {
  const pid = responder?.pid;
  if (pid === undefined) throw new Error('no echo responder');
  const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  if (!comm.startsWith('python')) throw new Error(`the echo responder's pid ${pid} is ${comm}, not python3`);
  return pid;
}

function bedDown(): void {
  if (responder?.pid !== undefined && responder.exitCode === null) process.kill(responder.pid, 'SIGKILL');
  responder = undefined;
  try {
    run('ip', ['netns', 'del', ns]);
  } catch {
    // not there
  }
}

interface Impl {
  readonly name: string;
  readonly bundle: string;
  readonly addon: string;
  /** The group every watch of the window is in (--mode group); none: ungrouped. */
  readonly group?: string;
}

/** Bundles the prober of the sources under `src` (esbuild, as the daemon's bundle) and builds their addon. */
function prepare(name: string, checkout: string, out: string): Impl {
  mkdirSync(out, { recursive: true });
  const bundle = join(out, 'liveness.cjs');
  const addon = join(out, 'helper.node');
  run(join(root, 'node_modules/.bin/esbuild'), [
    join(checkout, 'src/host/liveness/index.ts'),
    '--bundle',
    '--platform=node',
    '--format=cjs',
    '--log-level=error',
    '--minify-whitespace',
    '--minify-syntax',
    '--keep-names',
    `--outfile=${bundle}`,
  ]);
  run(process.execPath, [join(checkout, 'packaging/build-native.mjs'), addon]);
  return { name, bundle, addon };
}

/** A copy of `rev`'s sources (what the old bundle is built from). */
function checkoutOf(rev: string, dir: string): string {
  const tar = execFileSync(
    'git',
    ['-C', root, 'archive', rev, 'src', 'packaging', 'package.json', 'tsconfig.json'],
    {
      maxBuffer: 256 << 20,
    },
  );
  const out = join(dir, 'old-src');
  mkdirSync(out);
  execFileSync('tar', ['-x', '-C', out], { input: tar });
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'));
  return out;
}

interface Window {
  impl: string;
  /** The V8 mode it ran in (--v8). */
  v8: string;
  n: number;
  userMs: number;
  systemMs: number;
  seconds: number;
  replies: number;
  /** CPU of the echo responder (the far end) over the window, ms. */
  responderMs: number;
}

/**
 * Runs one window in a child process (stopped by pid if it outlives its time) in V8 mode `v8`; no
 * impl: a floor window, with `wake` one whose process only wakes every interval.
 */
function measure(
  dir: string,
  impl: Impl | undefined,
  n: number,
  v8: { readonly name: string; readonly flags: readonly string[] },
  wake = false,
): Promise<Window> {
  const script = join(dir, 'window.mjs');
  const args = [
    ...v8.flags,
    script,
    impl?.bundle ?? '',
    impl?.addon ?? '',
    String(impl === undefined ? 0 : n),
    String(seconds),
    String(settleMs),
    `/var/run/netns/${ns}`,
    tun,
    impl?.group ?? '',
    String(responderPid()),
    ownNetns ? 'inside' : '',
    wake ? 'wake' : '',
  ];
  return new Promise((resolve, reject) => {
    // `ip netns exec` execs node: the child's pid is the window's.
    const child = ownNetns
      ? spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'inherit'],
        })
      : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const limit = setTimeout(() => child.kill('SIGKILL'), settleMs + seconds * 1000 + 30_000);
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(limit);
      if (code !== 0) {
        reject(new Error(`window ${impl?.name ?? 'none'} N=${n} exited ${code ?? 'by signal'}`));
        return;
      }
      const r = JSON.parse(out) as {
        userMs: number;
        systemMs: number;
        seconds: number;
        replies: number;
        responder: number;
        dead: number;
        firstDead: string;
      };
      if (r.dead > 0) {
        reject(new Error(`${impl?.name ?? ''} N=${n}: ${r.dead} watches went dead, e.g. ${r.firstDead}`));
        return;
      }
      resolve({
        impl: impl?.name ?? (wake ? timerOnly : 'none'),
        v8: v8.name,
        n,
        userMs: r.userMs,
        systemMs: r.systemMs,
        seconds: r.seconds,
        replies: r.replies,
        responderMs: r.responder,
      });
    });
  });
}

const f = (x: number, d = 2): string => x.toFixed(d);
/**
 * A window without prober whose process wakes every interval doing nothing: what the wake-ups
 * alone cost (on a VM that is milliseconds each), the share of a round no prober code can save.
 */
const timerOnly = 'timer only';

async function main(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (raw sockets, netns)');
  console.log(`node ${process.version}, windows run in V8 mode(s):`);
  for (const m of modes) console.log(`  ${m.name}: ${m.flags.join(' ') || '(no flags)'}`);
  writeFileSync(join(dir, 'window.mjs'), windowScript);
  let old: Impl;
  let fresh: Impl;
  if (mode === 'group') {
    const tree = prepare('ungrouped', root, join(dir, 'new'));
    old = tree;
    fresh = { ...tree, name: 'grouped', group: 'agent:bench' };
  } else {
    const group = grouped ? { group: 'agent:bench' } : {};
    old = { ...prepare(`old ${oldRev}`, checkoutOf(oldRev, dir), join(dir, 'old')), ...group };
    fresh = { ...prepare('new', root, join(dir, 'new')), ...group };
  }
  await bedUp();
  const windows: Window[] = [];
  const width = Math.max(old.name.length, fresh.name.length) + 1;
  const show = (rep: number, w: Window): void => {
    console.log(
      `rep ${rep + 1} ${w.v8.padEnd(7)} ${w.impl.padEnd(width)} N=${String(w.n).padStart(5)}: user ${f(w.userMs / w.seconds)} ms/s, system ${f(w.systemMs / w.seconds)} ms/s, ${f(w.replies / w.seconds, 1)} echo replies/s, responder ${f(w.responderMs / w.seconds)} ms/s`,
    );
  };
  for (let rep = 0; rep < reps; rep++) {
    for (const v8 of rep % 2 === 0 ? modes : [...modes].reverse()) {
      for (const wake of [false, true]) {
        const floor = await measure(dir, undefined, 0, v8, wake);
        windows.push(floor);
        show(rep, floor);
      }
      for (const n of sizes) {
        for (const impl of rep % 2 === 0 ? [old, fresh] : [fresh, old]) {
          const w = await measure(dir, impl, n, v8);
          windows.push(w);
          show(rep, w);
        }
      }
    }
  }
  console.log(
    `\n${reps} rep(s) × ${seconds} s per window, ${intervalMs} ms interval; per watch per tick = CPU / (ticks × N)`,
  );
  const summary: string[] = [];
  for (const v8 of modes) {
    // Sums over the reps of each (impl, N); the floor per second from the mode's no-prober windows.
    const mine = windows.filter((w) => w.v8 === v8.name);
    const floor = mine.filter((w) => w.impl === 'none');
    const floorUser = sum(floor.map((w) => w.userMs)) / sum(floor.map((w) => w.seconds));
    const floorSystem = sum(floor.map((w) => w.systemMs)) / sum(floor.map((w) => w.seconds));
    console.log(
      `\nV8 mode ${v8.name}; floor (a window process without prober): user ${f(floorUser)} ms/s, system ${f(floorSystem)} ms/s (subtracted below)`,
    );
    console.log(
      `${'impl'.padEnd(width)}     N  user ms/s  system ms/s  total ms/s  % of a CPU  user µs/watch/tick  total µs/watch/tick  echoes/s  responder ms/s`,
    );
    const rows = new Map<string, { user: number; total: number; echoes: number; far: number }>();
    const ticksPerSecond = 1000 / intervalMs;
    for (const n of [0, ...sizes]) {
      for (const impl of n === 0 ? [timerOnly] : [old.name, fresh.name]) {
        const ws = mine.filter((w) => w.impl === impl && w.n === n);
        const secs = sum(ws.map((w) => w.seconds));
        const user = sum(ws.map((w) => w.userMs)) / secs - floorUser;
        const system = sum(ws.map((w) => w.systemMs)) / secs - floorSystem;
        const total = user + system;
        const echoes = sum(ws.map((w) => w.replies)) / secs;
        const far = sum(ws.map((w) => w.responderMs)) / secs;
        rows.set(`${impl}|${n}`, { user, total, echoes, far });
        const perWatch = (x: number): string => (n === 0 ? '-' : f((x * 1000) / ticksPerSecond / n));
        console.log(
          `${impl.padEnd(width)} ${String(n).padStart(5)}  ${f(user).padStart(9)}  ${f(system).padStart(11)}  ${f(total).padStart(10)}  ${f(total / 10, 3).padStart(9)}%  ${perWatch(user).padStart(18)}  ${perWatch(total).padStart(19)}  ${f(echoes, 1).padStart(8)}  ${f(far).padStart(14)}`,
        );
      }
    }
    for (const n of sizes) {
      const o = rows.get(`${old.name}|${n}`);
      const w = rows.get(`${fresh.name}|${n}`);
      if (o === undefined || w === undefined) continue;
      const wakeOnly = rows.get(`${timerOnly}|0`)?.total ?? 0;
      summary.push(
        `${v8.name} N=${n}: total over the timer-only window ${f(o.total - wakeOnly, 2)} -> ${f(w.total - wakeOnly, 2)} ms/s (${f((o.total - wakeOnly) / (w.total - wakeOnly), 1)}x), user ${f(o.user, 2)} -> ${f(w.user, 2)} ms/s (${f(o.user / w.user, 1)}x), total ${f(o.total, 2)} -> ${f(w.total, 2)} ms/s (${f(o.total / w.total, 1)}x), echoes ${f(o.echoes, 1)} -> ${f(w.echoes, 1)}/s (${f(o.echoes / w.echoes, 1)}x), responder ${f(o.far, 2)} -> ${f(w.far, 2)} ms/s`,
      );
    }
  }
  console.log(`\nSUMMARY prober CPU ${old.name} -> ${fresh.name}: ${summary.join('; ')}`);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

const dir = mkdtempSync(join(tmpdir(), 'nsmbliv-'));
process.exitCode = await runWithCleanup(
  () => main(dir),
  () => {
    bedDown();
    // The link first: what it points to is this checkout's node_modules.
    rmSync(join(dir, 'old-src', 'node_modules'), { force: true });
    rmSync(dir, { recursive: true, force: true });
    return Promise.resolve();
  },
);
