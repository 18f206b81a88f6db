import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * What `nsm-agent run` does to its own process for memory (main passes it in as CliIo.daemon; tests
 * run the command without it). Measured in bench/results/agent-memory-20261201.txt.
 */
export interface DaemonProcessHooks {
  /** Before the agent daemon loads: V8 settings for this daemon only. */
  starting(): void;
  /** Once the daemon reported ready. */
  ready(): void;
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
 */
export const daemonProcessHooks: DaemonProcessHooks = {
  starting() {
    setFlagsFromString('--no-opt');
    setFlagsFromString('--no-maglev');
  },
  ready() {
    setTimeout(collectGarbage, startupGcDelayMs).unref();
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
