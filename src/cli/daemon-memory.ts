import * as sea from 'node:sea';
import { readFileSync } from 'node:fs';
import { debuglog } from 'node:util';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { systemClock } from '../host/clock.js';
import type { Clock } from '../host/clock.js';
import { loadProcessMemoryAddon } from '../host/socket-buffers/index.js';
import type { ProcessMemoryAddon } from '../host/socket-buffers/index.js';

/**
 * What `nsm-agent run` does to its own process for memory (main passes it in as CliIo.daemon; tests
 * run the command without it). Measured in bench/results/agent-memory-20261201.txt.
 */
export interface DaemonProcessHooks {
  /** Before the agent daemon loads: V8 settings for this daemon only. */
  starting(): void;
  /** Once the daemon reported ready; `log` gets what was released. */
  ready(log?: Logger): void;
}

/** How long after ready the one full GC runs: past the first registry round trips and refreshes. */
export const startupGcDelayMs = 5_000;

/**
 * The agent daemon's V8 settings, and one full GC once it has settled.
 *
 * No optimising compilers (TurboFan, Maglev) until the agent has real work: start-up code (config
 * validation, module graphs, protobuf descriptors, TLS set-up) runs hot once and never again, and
 * an idle agent's timers are cheap enough in Ignition + Sparkplug; optimising them costs compile
 * time, zone memory, optimised code and the compilers' own machine code paging in (B's idle RSS
 * read 64.5–69.0 MB with them on after start-up, 66.2 without). They are turned on at the first
 * burst of work settleAfterBursts sees (connects being set up or served), for the code that then
 * runs hot: bench:agent, same session, CPU per connect of 200 B 5.5–5.8 → 4.6–5.7 ms, A 3.9–4.3 →
 * 3.2–3.8 ms. The control server (`server run`) and the CLI have them throughout. These are set
 * here and not in the binary's SEA execArgv because that applies to every subcommand; V8 reads
 * both flags when it decides to tier a function up, so setting them before the daemon's modules
 * load covers its start-up, and setting them back lets what runs later tier up as usual.
 *
 * The GC: start-up (config validation, protobuf descriptors, the x509 and gRPC module graphs)
 * leaves garbage, and the heap pages V8 grew for it stay committed (V8's memory reducer does not
 * run on a process that only wakes for timers): one full GC once ready returns ~10 MB to the OS.
 * Right after it, the native helper trims glibc's heap and drops the single binary's SEA blob pages
 * and program pages (releaseProcessMemory); from then on settleAfterBursts gives back what each
 * burst of work grew.
 */
export const daemonProcessHooks: DaemonProcessHooks = {
  starting() {
    setFlagsFromString('--no-opt');
    setFlagsFromString('--no-maglev');
  },
  ready(log) {
    setTimeout(() => {
      collectGarbage();
      void releaseProcessMemory(log === undefined ? {} : { log }).finally(() => {
        settleAfterBursts({ ...(log === undefined ? {} : { log }), onFirstBurst: optimiseFromNowOn });
      });
    }, startupGcDelayMs).unref();
  },
};

/** TurboFan and Maglev back on (daemonProcessHooks turned them off for start-up): what runs from now on tiers up as usual. */
export function optimiseFromNowOn(): void {
  setFlagsFromString('--opt');
  setFlagsFromString('--maglev');
}

/**
 * What settleAfterBursts reads of the process's memory: V8's committed heap and the anonymous part
 * of the RSS (not the file pages: code the daemon runs faults back in and is the page cache's to
 * reclaim).
 */
export interface MemorySample {
  readonly heapBytes: number;
  readonly rssAnonBytes: number;
}

export interface SettleOptions {
  /** How often the process's CPU time is read (default 2 s). */
  readonly sampleMs?: number;
  /** How long it must have been quiet after a burst before memory is given back (default 10 s). */
  readonly quietMs?: number;
  /** Growth of V8's committed heap since the last release that is worth a release (default 4 MiB)… */
  readonly heapGrowthBytes?: number;
  /** …or of the anonymous RSS (default 8 MiB). */
  readonly rssAnonGrowthBytes?: number;
  /** A sample is busy (not quiet) when the process used more than this share of one core (default 0.1). */
  readonly busyCpuShare?: number;
  /**
   * CPU time that makes a burst (default 600 ms): a run of busy samples in a row that used this much
   * together. 200 connects are (B ~1.7 s in 3 s; A serving them ~0.85 s spread over 4 s at ~20 % of
   * a core, which no single-sample threshold above the idle work catches); a batch of registry
   * refreshes (~0.3 s in one sample) is not.
   */
  readonly burstCpuMs?: number;
  readonly clock?: Clock;
  /** CPU time the process has used so far (default process.cpuUsage(), user + system). */
  readonly cpuMicros?: () => number;
  /** Read only when a release is being decided and after it (default: V8's heap statistics, /proc/self/status). */
  readonly memory?: () => MemorySample;
  /** What gives memory back (default releaseAfterBurst()). */
  readonly release?: () => Promise<ReleasedMemory | undefined>;
  /** Where each release is reported (info); default Node's debuglog (NODE_DEBUG=nsm-agent). */
  readonly log?: Logger;
  /** Called once, when the first burst is seen (the daemon turns its optimising compilers on). */
  readonly onFirstBurst?: () => void;
}

const MiB = 1024 * 1024;

function cpuMicros(): number {
  const cpu = process.cpuUsage();
  return cpu.user + cpu.system;
}

function memorySample(): MemorySample {
  return { heapBytes: getHeapStatistics().total_heap_size, rssAnonBytes: rssAnonBytes() };
}

/** RssAnon from /proc/self/status (Linux); the whole RSS where that cannot be read. */
function rssAnonBytes(): number {
  try {
    const kb = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1];
    if (kb !== undefined) return Number(kb) * 1024;
  } catch {
    // not Linux, or no procfs: fall through
  }
  return process.memoryUsage.rss();
}

export interface ReleaseAfterBurstOptions {
  /** The full GC (default collectGarbage). */
  readonly collect?: (o: CollectGarbageOptions) => void;
  /** The native helper (default: loadProcessMemoryAddon, the binary's embedded one). */
  readonly addon?: () => Promise<ProcessMemoryAddon>;
}

/**
 * What settleAfterBursts gives back: a memory-reducing full GC that keeps all bytecode, then
 * malloc_trim. Not the rest of the start-up release: flushing bytecode and unmapping the program's
 * pages only pay for code that never runs again, and after a burst that is the code the agent runs
 * (an agent serving 200 connections spent ~3 % of its idle CPU compiling it again, and faulted
 * ~100 MB of program text back in, after each such release).
 */
export async function releaseAfterBurst(
  o: ReleaseAfterBurstOptions = {},
): Promise<ReleasedMemory | undefined> {
  (o.collect ?? collectGarbage)({ flushBytecode: false });
  return releaseProcessMemory({ quiet: true, mallocTrimOnly: true, ...(o.addon ? { addon: o.addon } : {}) });
}

/**
 * Gives memory back once a burst of work (200 connects at boot, a peer's connections healing at
 * once) is over: V8 gives back the heap it grew for a burst only if its memory reducer gets to run,
 * which an idle daemon (woken by timers only) may not do for a long time, and glibc keeps the arenas
 * the burst's TLS and gRPC buffers used (Node never calls malloc_trim).
 *
 * A burst is a run of busy samples in a row that used `burstCpuMs` of CPU. Once one has been seen and the
 * daemon has been quiet for `quietMs` (no sample over `busyCpuShare`: the burst is over), memory is
 * looked at once: if the committed heap or the anonymous RSS grew past the thresholds since the last
 * release, `release` runs and the outcome is logged; either way the burst is settled. So at most one
 * release per burst, and none without one: an idle agent's heap drifts up between V8's own major GCs
 * (registry refreshes, drift checks) and grows back to its working size after a release, and
 * releasing for that cost more CPU than the idle agent used otherwise. The full GC pauses the event
 * loop (~100 ms with 200 connections); a connect landing in it is that much slower, which is why it
 * waits for quiet. Between bursts each sample is one process.cpuUsage() call.
 */
export function settleAfterBursts(o: SettleOptions = {}): { stop(): void } {
  const clock = o.clock ?? systemClock;
  const readCpu = o.cpuMicros ?? cpuMicros;
  const memory = o.memory ?? memorySample;
  const release = o.release ?? releaseAfterBurst;
  const sampleMs = o.sampleMs ?? 2_000;
  const quietMs = o.quietMs ?? 10_000;
  const heapGrowth = o.heapGrowthBytes ?? 4 * MiB;
  const rssAnonGrowth = o.rssAnonGrowthBytes ?? 8 * MiB;
  const busyCpu = o.busyCpuShare ?? 0.1;
  const burstCpuMs = o.burstCpuMs ?? 600;
  const log = o.log;
  let baseline = memory();
  let lastCpu = readCpu();
  let lastAt = clock.now();
  let lastBusyAt = lastAt;
  let burst = false;
  /** CPU (ms) of the busy samples in a row up to now. */
  let runCpuMs = 0;
  let onFirstBurst = o.onFirstBurst;
  let stopped = false;
  let timer = clock.setTimer(sampleMs, tick);

  function next(): void {
    if (!stopped) timer = clock.setTimer(sampleMs, tick);
  }

  function tick(): void {
    if (stopped) return;
    const now = clock.now();
    const cpu = readCpu();
    const usedMs = (cpu - lastCpu) / 1000;
    const cpuShare = usedMs / Math.max(1, now - lastAt);
    lastCpu = cpu;
    lastAt = now;
    if (cpuShare > busyCpu) {
      lastBusyAt = now;
      runCpuMs += usedMs;
      if (runCpuMs >= burstCpuMs && !burst) {
        burst = true;
        onFirstBurst?.();
        onFirstBurst = undefined;
      }
    } else {
      runCpuMs = 0;
    }
    if (!burst || now - lastBusyAt < quietMs) {
      next();
      return;
    }
    // The burst is over: whatever it grew is given back now, or never for this burst.
    burst = false;
    const before = memory();
    const grown =
      before.heapBytes - baseline.heapBytes >= heapGrowth ||
      before.rssAnonBytes - baseline.rssAnonBytes >= rssAnonGrowth;
    if (!grown) {
      next();
      return;
    }
    const started = performance.now();
    void release()
      .catch(() => undefined)
      .then((released) => {
        baseline = memory();
        report(before, baseline, released, Math.round(performance.now() - started));
        // The release's own CPU is not work.
        lastCpu = readCpu();
        lastAt = clock.now();
        next();
      });
  }

  function report(
    before: MemorySample,
    after: MemorySample,
    released: ReleasedMemory | undefined,
    ms: number,
  ): void {
    const mb = (n: number): number => Math.round((n / MiB) * 10) / 10;
    const fields = {
      heapMb: mb(before.heapBytes),
      heapAfterMb: mb(after.heapBytes),
      rssAnonMb: mb(before.rssAnonBytes),
      rssAnonAfterMb: mb(after.rssAnonBytes),
      ms,
      ...(released ?? {}),
    };
    const msg = 'released memory after a burst of work';
    if (log) log.info(fields, msg);
    else nodeDebug('%s %j', msg, fields);
  }

  return {
    stop() {
      stopped = true;
      timer.cancel();
    },
  };
}

export interface CollectGarbageOptions {
  /**
   * Whether V8 may drop the bytecode of functions that did not run lately (default true). At
   * start-up that is code that never runs again (-0.5 MB); after a burst it is code the agent runs,
   * which would be parsed and compiled again.
   */
  readonly flushBytecode?: boolean;
}

/**
 * A full, synchronous, memory-reducing GC (the `gc` V8 exposes to a new context once --expose-gc is
 * set). 'last-resort' is V8's GC for memory pressure: unlike a plain full GC it gives the heap back
 * (a plain one left the young generation and freed pages committed: RssAnon unchanged), and its
 * rounds of marking age bytecode until functions that did not run in between are flushed, unless
 * flushBytecode is false: V8 reads --flush-bytecode when each GC starts, so it is off for just this
 * one. Node 20's V8 collects nothing when gc() gets options, so a plain gc() follows (on Node 24 it
 * finds nothing left to do).
 */
export function collectGarbage(o: CollectGarbageOptions = {}): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: Readonly<Record<string, string>>) => void;
  const keepBytecode = o.flushBytecode === false;
  if (keepBytecode) setFlagsFromString('--no-flush-bytecode');
  try {
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    gc();
  } finally {
    if (keepBytecode) setFlagsFromString('--flush-bytecode');
  }
}

/**
 * What releaseProcessMemory did: glibc released memory; bytes of the SEA blob dropped; bytes of
 * the program's read-only segments unmapped.
 */
export interface ReleasedMemory {
  readonly mallocTrimmed: boolean;
  readonly seaBlobBytes: number;
  readonly programBytes: number;
}

export interface ReleaseProcessMemoryOptions {
  /** The native helper (default: loadProcessMemoryAddon, the binary's embedded one). */
  readonly addon?: () => Promise<ProcessMemoryAddon>;
  /** Whether this is the single binary, the only process with a SEA blob (default: node:sea). */
  readonly inBinary?: boolean;
  /** Where the outcome goes: the daemon's log (info; a failure at debug); default Node's debuglog (NODE_DEBUG=nsm-agent). */
  readonly log?: Logger;
  /** Only return what was released (the caller reports it): failures still go to debug. */
  readonly quiet?: boolean;
  /** Only malloc_trim: the SEA blob is dropped once, and program pages only at start-up. */
  readonly mallocTrimOnly?: boolean;
}

const nodeDebug = debuglog('nsm-agent');

/**
 * Gives the idle daemon's unused native memory back (native/process-memory.c): malloc_trim(0) for
 * the glibc heap (-1.9 MB), in the single binary the SEA blob's pages (-2.9 MB file-backed): Node
 * read the bundle source, its code cache and the addon asset from it at start-up and never again
 * (the addon is extracted once per process, before this runs); then the program's read-only
 * segments (Node/V8 machine code and read-only data, -20 MB once the pages the idle agent still
 * runs have faulted back): start-up code (config, module evaluation, TLS set-up) that idling never
 * runs again stops being mapped; the pages stay in the page cache, clean and unmapped, for the
 * kernel to reclaim first. Never fails: an addon without these functions (an older build), or one
 * that cannot be loaded, is logged at debug and the agent goes on; returns undefined then.
 */
export async function releaseProcessMemory(
  o: ReleaseProcessMemoryOptions = {},
): Promise<ReleasedMemory | undefined> {
  const log = o.log;
  const debug = (m: string): void => (log ? log.debug(m) : nodeDebug('%s', m));
  let addon: ProcessMemoryAddon;
  try {
    addon = await (o.addon ?? loadProcessMemoryAddon)();
  } catch (e: unknown) {
    debug(`memory not released after start-up: ${describe(e)}`);
    return undefined;
  }
  let mallocTrimmed = false;
  let seaBlobBytes = 0;
  let programBytes = 0;
  try {
    mallocTrimmed = addon.mallocTrim();
    if (!o.mallocTrimOnly) {
      if (o.inBinary ?? sea.isSea()) seaBlobBytes = addon.releaseSeaBlob();
      programBytes = addon.releaseProgramPages();
    }
  } catch (e: unknown) {
    debug(`memory not released after start-up: ${describe(e)}`);
  }
  const released = `after start-up: malloc_trim ${mallocTrimmed ? 'released memory' : 'released nothing'}, SEA blob pages dropped: ${seaBlobBytes} bytes, program pages unmapped: ${programBytes} bytes`;
  if (o.quiet) return { mallocTrimmed, seaBlobBytes, programBytes };
  if (log) log.info({ mallocTrimmed, seaBlobBytes, programBytes }, 'released start-up memory');
  else debug(released);
  return { mallocTrimmed, seaBlobBytes, programBytes };
}
