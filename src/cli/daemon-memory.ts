import * as sea from 'node:sea';
import { debuglog } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe } from '../errors/index.js';
import type { Logger } from '../log/index.js';
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
      void releaseProcessMemory(log === undefined ? {} : { log });
    }, startupGcDelayMs).unref();
  },
};

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
  if (log) log.info({ mallocTrimmed, seaBlobBytes, programBytes }, 'released start-up memory');
  else debug(released);
  return { mallocTrimmed, seaBlobBytes, programBytes };
}
