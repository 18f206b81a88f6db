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
 * No optimising compilers (TurboFan, Maglev) in the agent: its JS is control-plane work (a connect
 * is a few chain hops and a protobuf or two), which Ignition + Sparkplug run fast enough, and the
 * compilers' own machine code is ~7 MB of the binary's text that then never pages in, plus their
 * zone memory. The control server (`server run`) and the CLI keep them: the registry's Register
 * costs ~40% more server CPU without them. These are set here and not in the binary's SEA
 * execArgv because that applies to every subcommand; V8 reads both flags when it decides to tier
 * a function up, so setting them before the daemon's modules load covers all of its code.
 *
 * The GC: start-up (config validation, protobuf descriptors, the x509 and gRPC module graphs)
 * leaves garbage, and the heap pages V8 grew for it stay committed (V8's memory reducer does not
 * run on a process that only wakes for timers): one full GC once ready returns ~10 MB to the OS.
 * Right after it, the native helper trims glibc's heap and drops the single binary's SEA blob pages
 * (releaseProcessMemory).
 */
export const daemonProcessHooks: DaemonProcessHooks = {
  starting() {
    setFlagsFromString('--no-opt');
    setFlagsFromString('--no-maglev');
  },
  ready(log) {
    setTimeout(() => {
      collectGarbage();
      void releaseProcessMemory(log === undefined ? {} : { log }).finally(() =>
        settleAfterBursts(log === undefined ? {} : { log }),
      );
    }, startupGcDelayMs).unref();
  },
};

/**
 * What settleAfterBursts reads of the process: V8's committed heap, the anonymous part of the RSS
 * (not the file pages: code the daemon runs faults back in after every release and is the page
 * cache's to reclaim), and CPU time used so far.
 */
export interface ProcessSample {
  readonly heapBytes: number;
  readonly rssAnonBytes: number;
  readonly cpuMicros: number;
}

export interface SettleOptions {
  /** How often the process is looked at (default 2 s: a few reads of counters, ~50 µs). */
  readonly sampleMs?: number;
  /** How long it must have been quiet after a burst before memory is given back (default 10 s). */
  readonly quietMs?: number;
  /** Growth of V8's committed heap since the last release that makes a burst (default 4 MiB)… */
  readonly heapGrowthBytes?: number;
  /** …or of the anonymous RSS (default 8 MiB). */
  readonly rssAnonGrowthBytes?: number;
  /**
   * For this long after a release (and after the start) the baseline follows the process up (default
   * 60 s; a sample using more than 3 × busyCpuShare ends it): a heap just shrunk by a full GC grows back to its
   * working size with ordinary idle work, and that is not a burst. Without it an agent serving 200 connections released every ~10–40 s,
   * a full GC (~100 ms) and the program pages faulting back each time.
   */
  readonly rebaselineMs?: number;
  /** A sample is busy when the process used more CPU than this share of one core (default 0.1). */
  readonly busyCpuShare?: number;
  readonly clock?: Clock;
  readonly sample?: () => ProcessSample;
  /** What gives memory back (default: collectGarbage() and releaseProcessMemory()). */
  readonly release?: () => Promise<ReleasedMemory | undefined>;
  /** Where each release is reported (info); default Node's debuglog (NODE_DEBUG=nsm-agent). */
  readonly log?: Logger;
}

const MiB = 1024 * 1024;

function processSample(): ProcessSample {
  const cpu = process.cpuUsage();
  return {
    heapBytes: getHeapStatistics().total_heap_size,
    rssAnonBytes: rssAnonBytes(),
    cpuMicros: cpu.user + cpu.system,
  };
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

async function releaseAll(): Promise<ReleasedMemory | undefined> {
  collectGarbage();
  return releaseProcessMemory({ quiet: true });
}

/**
 * The start-up release, again after each burst of work (200 connects at boot, a peer's connections
 * healing at once): V8 gives back the heap it grew for a burst only if its memory reducer gets to
 * run, which an idle daemon (woken by timers only) may not do for a long time, and glibc keeps the
 * arenas the burst's TLS and gRPC buffers used (Node never calls malloc_trim). Once the committed
 * heap or the anonymous RSS has grown since the last release and the daemon has been quiet for
 * `quietMs` — no sample with more than `busyCpuShare` of a core, so no burst is still running —
 * one full GC, malloc_trim and the program-page drop run, and the outcome is logged. At most once
 * per burst: the next release needs new growth beyond what the process settles at in the minute after
 * a release (file pages faulting back in, and the heap regrowing to its working size, do not count). The
 * full GC pauses the event loop (80–110 ms with 200 connections); a connect landing in it is that
 * much slower, which is why it waits for quiet. B after 200 connects (bench --settle 60): RSS
 * 86.6 → 51.0 MB.
 */
export function settleAfterBursts(o: SettleOptions = {}): { stop(): void } {
  const clock = o.clock ?? systemClock;
  const sample = o.sample ?? processSample;
  const release = o.release ?? releaseAll;
  const sampleMs = o.sampleMs ?? 2_000;
  const quietMs = o.quietMs ?? 10_000;
  const heapGrowth = o.heapGrowthBytes ?? 4 * MiB;
  const rssAnonGrowth = o.rssAnonGrowthBytes ?? 8 * MiB;
  const busyCpu = o.busyCpuShare ?? 0.1;
  const rebaselineMs = o.rebaselineMs ?? 60_000;
  const log = o.log;
  let baseline = sample();
  let last = baseline;
  let lastAt = clock.now();
  let lastBusyAt = lastAt;
  let rebaselineUntil = lastAt + rebaselineMs;
  let stopped = false;
  let timer = clock.setTimer(sampleMs, tick);

  function tick(): void {
    if (stopped) return;
    const now = clock.now();
    const s = sample();
    const cpuShare = (s.cpuMicros - last.cpuMicros) / 1000 / Math.max(1, now - lastAt);
    if (cpuShare > busyCpu) lastBusyAt = now;
    last = s;
    lastAt = now;
    // Heavy work starting inside the window is a burst: from here its growth counts. Not the light
    // periodic work of an idle agent (a batch of registry refreshes reads ~10 % of a core for one
    // sample), which made an agent with 271 exposes release again every 40 s.
    if (cpuShare > 3 * busyCpu) rebaselineUntil = Math.min(rebaselineUntil, now);
    if (now < rebaselineUntil) {
      baseline = {
        heapBytes: Math.max(baseline.heapBytes, s.heapBytes),
        rssAnonBytes: Math.max(baseline.rssAnonBytes, s.rssAnonBytes),
        cpuMicros: s.cpuMicros,
      };
      timer = clock.setTimer(sampleMs, tick);
      return;
    }
    const grown =
      s.heapBytes - baseline.heapBytes >= heapGrowth ||
      s.rssAnonBytes - baseline.rssAnonBytes >= rssAnonGrowth;
    if (!grown || now - lastBusyAt < quietMs) {
      timer = clock.setTimer(sampleMs, tick);
      return;
    }
    const started = performance.now();
    void release()
      .catch(() => undefined)
      .then((released) => {
        const after = sample();
        report(s, after, released, Math.round(performance.now() - started));
        baseline = after;
        last = after;
        lastAt = clock.now();
        lastBusyAt = lastAt;
        rebaselineUntil = lastAt + rebaselineMs;
        if (!stopped) timer = clock.setTimer(sampleMs, tick);
      });
  }

  function report(
    before: ProcessSample,
    after: ProcessSample,
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

/**
 * A full, synchronous, memory-reducing GC (the `gc` V8 exposes to a new context once --expose-gc is
 * set). 'last-resort' is V8's GC for memory pressure: it also flushes the bytecode of functions that
 * only ran at start-up (-0.5 MB more than a plain full GC). Node 20's V8 collects nothing when gc()
 * gets options, so a plain gc() follows (on Node 24 it finds nothing left to do).
 */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: Readonly<Record<string, string>>) => void;
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  gc();
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
    if (o.inBinary ?? sea.isSea()) seaBlobBytes = addon.releaseSeaBlob();
    programBytes = addon.releaseProgramPages();
  } catch (e: unknown) {
    debug(`memory not released after start-up: ${describe(e)}`);
  }
  const released = `after start-up: malloc_trim ${mallocTrimmed ? 'released memory' : 'released nothing'}, SEA blob pages dropped: ${seaBlobBytes} bytes, program pages unmapped: ${programBytes} bytes`;
  if (o.quiet) return { mallocTrimmed, seaBlobBytes, programBytes };
  if (log) log.info({ mallocTrimmed, seaBlobBytes, programBytes }, 'released start-up memory');
  else debug(released);
  return { mallocTrimmed, seaBlobBytes, programBytes };
}
