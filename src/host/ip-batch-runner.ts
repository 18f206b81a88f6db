import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { silentLogger } from '../log/index.js';
import type { Logger } from '../log/index.js';
import {
  OutputCapture,
  checkResult,
  defaultTimeoutMs,
  effectiveArgv,
  signalExitCode,
} from './command-runner.js';
import type { CommandRunner, RunOptions, RunResult } from './command-runner.js';
import { namedNetnsDir, namedNetnsPath } from './netns.js';

export interface IpBatchRunnerOptions {
  /** Runs every other command, and a batch no kept process can take. */
  readonly inner: CommandRunner;
  /** A named netns' process stops after this long without a request; the agent's own netns keeps its process. Default 60 s. */
  readonly idleMs?: number;
  /** At most this many named netns keep a process at once; the others get one process per batch. Default 16. */
  readonly maxNamed?: number;
  readonly log?: Logger;
}

/**
 * A CommandRunner that keeps one `ip -json -batch -` process per netns and sends it every
 * `ip [-n <netns>] [-json] -batch -` it is asked to run, instead of starting a process each time (a
 * start costs the agent ~3 ms of event-loop time without JIT; each apply and each drift check, every
 * 10 s, pays it).
 * Everything else goes to `inner`, one process per command, as before.
 *
 * Each request gives the same stdout, stderr and exit code as its own `ip -json -batch -` would:
 * - its end is a marker command whose output (one JSON line `ip` flushes at once) no listing the
 *   forwarder sends looks like;
 * - the process runs without `-force`, so the first failed line ends it as it ends a one-shot batch
 *   (the lines after it do not run), and its stderr is the request's; the line number of
 *   `Command failed -:N` is counted from the request's first line. The next request starts a
 *   new process;
 * - a process that dies in the middle of a request (killed, crashed) fails that request with a
 *   message saying so, or, when the request only lists (`show`/`list`), runs it once more in a new
 *   process; the request's timeout kills the process as it kills a one-shot one;
 * - a named netns' process is stopped when the name no longer leads to the netns it runs in: the
 *   workload deleted it, and the process must not keep it (and the veth into it) alive. A watch on
 *   /var/run/netns notices at once; each request checks again, and reads the netns as gone, as a
 *   new process would. It also stops after `idleMs` without requests;
 * - `ip` remembers interface indexes by name for its lifetime: a line that fails because a kept
 *   process named a link by an index it remembered from before the link was made again is run
 *   again, with the lines after it, in a new process (see #rerunFrom). A line could only act on
 *   the wrong link where a remembered index now belongs to another link (one renamed, or moved in
 *   from another netns under a freed index): the forwarder's links are neither. Listings name
 *   links from what they list (`addr show`, first in the forwarder's reads, refreshes every name);
 *   names from /etc/iproute2 (tables, protocols, groups) are read once per process;
 * - `ip link add … netns <ns>` leaves that netns open in the process: the process is stopped
 *   after such a request, so a workload's deleted netns is not kept alive by it;
 * - when the process cannot be started, or `ip` lacks the marker, requests go to `inner`.
 *
 * The processes read their commands from a pipe: when the agent dies, even by SIGKILL, they read
 * end-of-file and exit. close() stops them; requests after close() go to `inner`.
 */
export class IpBatchRunner implements CommandRunner {
  readonly #o: IpBatchRunnerOptions;
  readonly #log: Logger;
  #own: IpBatchSession | undefined;
  readonly #named = new Map<string, IpBatchSession>();
  #watcher: FSWatcher | undefined;
  #closed = false;

  constructor(options: IpBatchRunnerOptions) {
    this.#o = options;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'ip-batch' });
  }

  async runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return checkResult(effectiveArgv(argv, options.netns), await this.run(argv, options));
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const session = this.#closed ? undefined : this.#sessionFor(argv, options);
    if (session === undefined) return this.#o.inner.run(argv, options);
    return session.run(options.input ?? '', options.timeoutMs ?? defaultTimeoutMs, () =>
      this.#o.inner.run(argv, options),
    );
  }

  /** The pids of the kept `ip` processes now running (tests and benchmarks). */
  get pids(): number[] {
    const sessions = [this.#own, ...this.#named.values()];
    return sessions.flatMap((s) => (s?.pid === undefined ? [] : [s.pid]));
  }

  /** Stops every kept process (a request in flight still finishes); later batches run one-shot. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    const sessions = [this.#own, ...this.#named.values()];
    this.#own = undefined;
    this.#named.clear();
    await Promise.all(sessions.flatMap((s) => (s === undefined ? [] : [s.close()])));
  }

  #sessionFor(argv: readonly string[], options: RunOptions): IpBatchSession | undefined {
    const target = batchTarget(argv);
    if (target === undefined || options.netns !== undefined || options.input === undefined) return undefined;
    if (!fitsSession(options.input, target.json)) return undefined;
    if (target.netns === undefined) {
      this.#own ??= new IpBatchSession({ log: this.#log });
      return this.#own;
    }
    const name = target.netns;
    const kept = this.#named.get(name);
    if (kept !== undefined) return kept;
    if (this.#named.size >= (this.#o.maxNamed ?? 16)) return undefined;
    const session: IpBatchSession = new IpBatchSession({
      log: this.#log,
      netns: name,
      idleMs: this.#o.idleMs ?? 60_000,
      onIdle: () => {
        if (this.#named.get(name) === session) this.#named.delete(name);
        void session.close();
      },
    });
    this.#named.set(name, session);
    this.#watch();
    return session;
  }

  /** Netns names come and go under /var/run/netns: a kept process whose netns went is stopped. */
  #watch(): void {
    if (this.#watcher !== undefined) return;
    try {
      this.#watcher = watch(namedNetnsDir, () => {
        for (const s of this.#named.values()) void s.releaseIfGone();
      });
      this.#watcher.on('error', () => undefined);
      this.#watcher.unref();
    } catch {
      // No directory to watch: the check before each request still holds.
    }
  }
}

/** `ip [-n <netns>] [-json] -batch -`, or undefined for any other command. */
export function batchTarget(argv: readonly string[]): { netns?: string; json: boolean } | undefined {
  if (argv[0] !== 'ip') return undefined;
  let i = 1;
  let netns: string | undefined;
  if (argv[1] === '-n' && argv[2] !== undefined) {
    netns = argv[2];
    i = 3;
  }
  const json = argv[i] === '-json';
  if (json) i++;
  if (argv[i] !== '-batch' || argv[i + 1] !== '-' || argv.length !== i + 2) return undefined;
  return { ...(netns === undefined ? {} : { netns }), json };
}

/**
 * Whether a script may go to a kept `ip -json` process: none of its lines prints what could pass
 * for the marker (`netconf`), and without `-json` asked for, no line lists anything (a listing
 * would print JSON where the caller expects text; changes print nothing either way).
 */
function fitsSession(script: string, json: boolean): boolean {
  for (const line of script.split('\n')) {
    const words = line.trim().split(/\s+/);
    const object = words[0] ?? '';
    if (object === '') continue;
    if ('netconf'.startsWith(object) && object.length >= 4) return false;
    if (!json && isListing(words)) return false;
  }
  return true;
}

/** `ip <object> show|list|…` (or the object alone, which lists): a line that changes nothing. */
function isListing(words: readonly string[]): boolean {
  const verb = words[1];
  return verb === undefined || verb === 'show' || verb === 'list' || verb === 'ls' || verb === 'lst';
}

/** A script that changes nothing, so running it again after its process died is safe. */
function onlyListings(script: string): boolean {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .every((l) => isListing(l.split(/\s+/)));
}

/**
 * The marker: `ip -json netconf show dev lo` prints one line that begins like this (every netns has
 * `lo`), flushed as soon as it is done; `addr`, `route` and `neigh` listings never begin so.
 */
const markerCommand = 'netconf show dev lo\n';
const markerPrefix = Buffer.from('[{"family":"inet');

interface SessionOptions {
  readonly log: Logger;
  /** A named netns (`ip -n <netns>`); absent: the agent's own. */
  readonly netns?: string;
  readonly idleMs?: number;
  readonly onIdle?: () => void;
}

/** One request in flight: what its own `ip -batch` would have printed so far. */
interface Request {
  readonly out: OutputCapture;
  readonly err: OutputCapture;
  readonly scanner: MarkerScanner;
  /** The marker's line ended: the request is complete, even if the process ends right after. */
  markerSeen: boolean;
  readonly done: (outcome: Outcome) => void;
}

type Outcome =
  | { readonly kind: 'marker' }
  | { readonly kind: 'exit'; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly kind: 'spawn-error'; readonly error: Error };

/** A kept `ip -json -batch -` process. */
interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Lines written to it so far (its `Command failed -:N` counts them). */
  lines: number;
  /** Requests it answered; 0: it is new, and what it does is what a one-shot process would do. */
  served: number;
  /** The netns it runs in (dev:ino of /proc/<pid>/ns/net), known after its first request. */
  netnsId?: string | undefined;
  request?: Request | undefined;
  ended: boolean;
  readonly exited: Promise<void>;
}

/** One kept `ip -json -batch -` process and the requests sent to it, one at a time. */
class IpBatchSession {
  readonly #o: SessionOptions;
  #child: Child | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #idle: ReturnType<typeof setTimeout> | undefined;
  /** Set when this `ip` cannot serve requests (no marker, cannot start): everything goes one-shot. */
  #unusable = false;
  #closed = false;

  constructor(o: SessionOptions) {
    this.#o = o;
  }

  get pid(): number | undefined {
    return this.#child?.proc.pid;
  }

  run(script: string, timeoutMs: number, oneShot: () => Promise<RunResult>): Promise<RunResult> {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    const result = this.#tail.then(() => this.#serve(script, timeoutMs, oneShot));
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined) await stop(child);
  }

  async #serve(script: string, timeoutMs: number, oneShot: () => Promise<RunResult>): Promise<RunResult> {
    if (this.#closed || this.#unusable) return oneShot();
    const text = script === '' || script.endsWith('\n') ? script : `${script}\n`;
    try {
      let r = await this.#request(text, timeoutMs);
      if (r === 'died' && onlyListings(text)) r = await this.#request(text, timeoutMs);
      if (r === 'died') return diedResult;
      if (r !== undefined && 'staleAt' in r) return await this.#rerunFrom(text, r, timeoutMs);
      return r ?? (await oneShot());
    } finally {
      this.#armIdle();
    }
  }

  /**
   * `ip` remembers interface indexes by name for its lifetime: after a link was deleted and made
   * again under its name (a workload's veth), a kept process can name the old index and fail with
   * "Device not found" where a new process would not. The lines from the failed one run again in a
   * new process (the failure ended the old one), as a one-shot process would have run them.
   */
  async #rerunFrom(script: string, stale: Stale, timeoutMs: number): Promise<RunResult> {
    const rest = script
      .split('\n')
      .slice(stale.staleAt - 1)
      .join('\n');
    const r = await this.#request(rest, timeoutMs);
    if (r === undefined || r === 'died' || 'staleAt' in r)
      return { stdout: stale.stdout, stderr: stale.stderr, code: stale.code };
    return {
      stdout: stale.stdout + r.stdout,
      stderr: renumber(r.stderr, -(stale.staleAt - 1)),
      code: r.code,
    };
  }

  /** One request on the kept process (started if needed); undefined: run it one-shot instead. */
  async #request(script: string, timeoutMs: number): Promise<RunResult | Stale | 'died' | undefined> {
    const child = await this.#current();
    if (child === undefined) return undefined;
    const lines = countLines(script);
    const offset = child.lines;
    const out = new OutputCapture();
    const err = new OutputCapture();
    const late = { timedOut: false };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await new Promise<Outcome>((resolve) => {
      child.request = { out, err, scanner: new MarkerScanner(), markerSeen: false, done: resolve };
      child.lines += lines + 1;
      hold(child, true);
      timer = setTimeout(() => {
        late.timedOut = true;
        kill(child);
      }, timeoutMs);
      child.proc.stdin.write(script + markerCommand);
    });
    clearTimeout(timer);
    child.request = undefined;
    hold(child, false);
    if (outcome.kind === 'spawn-error') {
      this.#drop(child);
      this.#unusable = true;
      this.#o.log.warn(
        { err: outcome.error.message },
        'cannot keep an ip -batch process; running one ip process per batch',
      );
      return undefined;
    }
    if (outcome.kind === 'marker') {
      child.served++;
      if (child.served === 1 && this.#o.netns !== undefined) await this.#learnNetns(child);
      if (/\snetns\s/.test(script)) {
        // `ip link add … netns <ns>` keeps the netns open for the life of the process (so a
        // deleted workload netns, and its veth, would stay): this process is done.
        this.#drop(child);
        void stop(child);
      }
      return { stdout: out.text(), stderr: err.text(), code: 0 };
    }
    // The process ended before the marker.
    this.#drop(child);
    const stderr = renumber(err.text(), offset);
    const failed = failedLine(stderr);
    const code = outcome.code ?? signalExitCode(outcome.signal);
    if (late.timedOut)
      return {
        stdout: out.text(),
        stderr: `${stderr}\n(killed: no answer within ${timeoutMs} ms)`,
        code,
      };
    if (failed === lines + 1) {
      // Every line of the request ran; this `ip` cannot run the marker, so no kept process.
      this.#unusable = true;
      this.#o.log.warn({ stderr }, 'ip cannot run the request marker; running one ip process per batch');
      return { stdout: out.text(), stderr: '', code: 0 };
    }
    if (failed !== undefined && failed <= lines && child.served > 0 && deviceMissing.test(stderr))
      return { staleAt: failed, stdout: out.text(), stderr, code };
    if (outcome.signal === null || child.served === 0) {
      // A failed line ended it (some, like a bad argument, exit without `Command failed`), or it
      // never got going (no such netns): as a one-shot process ends.
      return { stdout: out.text(), stderr, code };
    }
    this.#o.log.warn(
      {
        code: outcome.code,
        signal: outcome.signal,
        ...(this.#o.netns === undefined ? {} : { netns: this.#o.netns }),
      },
      'the kept ip -batch process ended in the middle of a request',
    );
    return 'died';
  }

  /**
   * The process to send to: started when there is none (or it ended); a named netns' process is
   * stopped first when the name no longer leads to its netns.
   */
  async #current(): Promise<Child | undefined> {
    await this.releaseIfGone();
    const child = this.#child;
    if (child !== undefined && !child.ended) return child;
    if (this.#closed) return undefined;
    try {
      this.#child = this.#start();
    } catch (e: unknown) {
      this.#unusable = true;
      this.#o.log.warn(
        { err: String(e) },
        'cannot keep an ip -batch process; running one ip process per batch',
      );
      return undefined;
    }
    return this.#child;
  }

  /** Stops the process when its netns name no longer leads to the netns it runs in. */
  async releaseIfGone(): Promise<void> {
    const child = this.#child;
    if (this.#o.netns === undefined || child?.netnsId === undefined) return;
    if ((await netnsIdOf(namedNetnsPath(this.#o.netns))) === child.netnsId) return;
    this.#drop(child);
    await stop(child);
  }

  #drop(child: Child): void {
    if (this.#child === child) this.#child = undefined;
  }

  /** After its first request the process is in its netns: that netns must be the one the name leads to. */
  async #learnNetns(child: Child): Promise<void> {
    const [mine, named] = await Promise.all([
      netnsIdOf(`/proc/${child.proc.pid}/ns/net`),
      netnsIdOf(namedNetnsPath(this.#o.netns ?? '')),
    ]);
    child.netnsId = mine;
    if (mine === undefined || mine !== named) {
      this.#drop(child);
      await stop(child);
    }
  }

  #start(): Child {
    const args = [...(this.#o.netns === undefined ? [] : ['-n', this.#o.netns]), '-json', '-batch', '-'];
    const proc = spawn('ip', args, { shell: false, stdio: ['pipe', 'pipe', 'pipe'] });
    let exited!: () => void;
    const child: Child = {
      proc,
      lines: 0,
      served: 0,
      ended: false,
      exited: new Promise<void>((resolve) => (exited = resolve)),
    };
    // Idle, it must not keep the agent's event loop alive; a request in flight does (hold()).
    hold(child, false);
    proc.stdin.on('error', () => undefined);
    proc.stdout.on('data', (b: Buffer) => {
      const r = child.request;
      if (r === undefined) return;
      if (!r.markerSeen && r.scanner.feed(b, (part) => r.out.add(part))) {
        r.markerSeen = true;
        // What `ip` wrote to stderr before the marker is read in this same turn of the event loop.
        setImmediate(() => r.done({ kind: 'marker' }));
      }
    });
    proc.stderr.on('data', (b: Buffer) => child.request?.err.add(b));
    proc.on('error', (error: Error) => {
      if (proc.pid === undefined) {
        child.ended = true;
        exited();
        child.request?.done({ kind: 'spawn-error', error });
      }
    });
    proc.on('close', (code, signal) => {
      child.ended = true;
      exited();
      const r = child.request;
      r?.done(r.markerSeen ? { kind: 'marker' } : { kind: 'exit', code, signal });
    });
    return child;
  }

  #armIdle(): void {
    const onIdle = this.#o.onIdle;
    if (this.#o.idleMs === undefined || onIdle === undefined || this.#closed) return;
    this.#idle = setTimeout(onIdle, this.#o.idleMs);
    this.#idle.unref();
  }
}

interface Refable {
  ref(): void;
  unref(): void;
}

/** Whether the process and its output pipes keep the event loop alive (as a one-shot child does while it runs). */
function hold(child: Child, on: boolean): void {
  for (const h of [child.proc, child.proc.stdout, child.proc.stderr] as unknown as Refable[]) {
    if (on) h.ref();
    else h.unref();
  }
}

/** Ends its input (it exits at end-of-file, after the request in flight); SIGKILL after 2 s. */
async function stop(child: Child): Promise<void> {
  child.proc.stdin.end();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 2_000)));
  if ((await Promise.race([child.exited, late])) === 'late') {
    kill(child);
    await child.exited;
  }
  clearTimeout(timer);
}

function kill(child: Child): void {
  if (child.proc.pid === undefined || child.ended) return;
  try {
    process.kill(child.proc.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function netnsIdOf(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** A request that failed on a device name a kept process may remember wrong (see #rerunFrom). */
interface Stale extends RunResult {
  /** The request's line that failed, from 1. */
  readonly staleAt: number;
}

/** What `ip` says when the interface index it sent names no device. */
const deviceMissing = /Device not found|No such device|Cannot find device|does not exist/;

const diedResult: RunResult = {
  stdout: '',
  stderr:
    'the ip -batch process ended before it finished the request; the lines before it may have been applied (a new one starts with the next request)',
  code: 1,
};

/** `Command failed -:N` with N counted from the request's first line, as its own process prints it. */
function renumber(stderr: string, offset: number): string {
  if (offset === 0) return stderr;
  return stderr.replace(
    /^Command failed -:(\d+)$/gm,
    (_, n: string) => `Command failed -:${Number(n) - offset}`,
  );
}

function failedLine(stderr: string): number | undefined {
  const m = /^Command failed -:(\d+)$/m.exec(stderr);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Splits a request's stdout at the marker line without holding more than the start of a line:
 * bytes go to `emit` as they come, except those that may still be the beginning of the marker.
 */
export class MarkerScanner {
  #mode: 'head' | 'plain' | 'marker' = 'head';
  #held = 0;

  /** True when the marker's line ended (the request's output is complete). */
  feed(b: Buffer, emit: (part: Buffer) => void): boolean {
    let i = 0;
    while (i < b.length) {
      if (this.#mode === 'plain') {
        const nl = b.indexOf(10, i);
        if (nl < 0) {
          emit(b.subarray(i));
          return false;
        }
        emit(b.subarray(i, nl + 1));
        i = nl + 1;
        this.#mode = 'head';
        this.#held = 0;
      } else if (this.#mode === 'marker') {
        return b.indexOf(10, i) >= 0;
      } else if (b[i] === markerPrefix[this.#held]) {
        this.#held++;
        i++;
        if (this.#held === markerPrefix.length) this.#mode = 'marker';
      } else {
        if (this.#held > 0) emit(markerPrefix.subarray(0, this.#held));
        this.#mode = 'plain';
        this.#held = 0;
      }
    }
    return false;
  }
}
