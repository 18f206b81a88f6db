import { spawn } from 'node:child_process';
import { AgentError } from '../errors/index.js';

/**
 * OS commands as a port (Tailscale's osrouter runner): argv arrays, never a shell. Production code
 * takes a CommandRunner; tests pass the recording runner (src/host/fake/recording-runner.ts) and
 * compare the transcript of argv arrays with the one they expect.
 *
 * Secrets (WireGuard private keys) go through `input` (stdin) or a root-only file, never argv: argv
 * is world-readable in /proc/<pid>/cmdline and ends up in error messages. (A child's stdin is a
 * socket, not a pipe, so a program that fopen()s /dev/stdin, like `wg`, needs the file.)
 */
export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string;
  /** Kill the child (SIGKILL, by pid) after this long; default 30 s. */
  readonly timeoutMs?: number;
  /** Run inside this named network namespace (`ip netns exec <netns> …`). */
  readonly netns?: string;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code; 128 + signal number when the child was killed by a signal (e.g. the timeout). */
  readonly code: number;
}

export interface CommandRunner {
  /** Runs argv and reports how it ended; throws only when the program cannot be started at all. */
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Like run(), but a non-zero exit is an AgentError EXEC_FAILED naming the command and its stderr. */
  runChecked(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export const defaultTimeoutMs = 30_000;
/** Each of stdout and stderr is cut at this size; `ip -json route show` of a full table fits easily. */
export const maxOutputBytes = 16 * 1024 * 1024;

/** The argv that really runs: `ip netns exec <ns>` in front when a netns is asked for. */
export function effectiveArgv(argv: readonly string[], netns?: string): readonly string[] {
  if (argv.length === 0) {
    throw new AgentError('INVALID_ARGUMENT', 'cannot run an empty command', {
      hint: 'this is a bug in the caller: pass the program and its arguments',
    });
  }
  return netns === undefined ? argv : ['ip', 'netns', 'exec', netns, ...argv];
}

/**
 * The first words of a command, for messages: enough to tell which one failed, never its payload.
 * For `ip netns exec <ns> …` it names the command run inside and the netns.
 */
export function commandLabel(argv: readonly string[]): string {
  if (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' && argv.length > 4) {
    return `${commandLabel(argv.slice(4))} (in netns ${argv[3] ?? ''})`;
  }
  if (argv[0] === 'ip') {
    // `ip -n h1 -json route show …` → `ip route show (in netns h1)`: the object and verb, not the options.
    let netns: string | undefined;
    const words: string[] = [];
    for (let i = 1; i < argv.length && words.length < 2; i++) {
      const w = argv[i] ?? '';
      if (w === '-n' || w === '-netns') netns = argv[++i];
      else if (w === '-batch') words.push(w, argv[++i] ?? '');
      else if (!w.startsWith('-')) words.push(w);
    }
    return `ip ${words.join(' ')}${netns === undefined ? '' : ` (in netns ${netns})`}`;
  }
  return argv.slice(0, 3).join(' ');
}

/** The EXEC_FAILED error for a finished command (shared by the real and the recording runner). */
export function execFailed(argv: readonly string[], result: RunResult): AgentError {
  const stderr = result.stderr.trim().split('\n').slice(-5).join(' | ').slice(0, 2_000);
  const label = commandLabel(argv);
  return new AgentError(
    'EXEC_FAILED',
    `'${label}' failed with exit code ${result.code}${stderr === '' ? '' : `: ${stderr}`}`,
    {
      hint: 'run the command by hand as root to see the whole error; check that the tool is installed and the agent has CAP_NET_ADMIN',
      details: { command: label, exitCode: result.code },
    },
  );
}

/** Throws execFailed() unless the command exited 0. */
export function checkResult(argv: readonly string[], result: RunResult): RunResult {
  if (result.code !== 0) throw execFailed(argv, result);
  return result;
}

const signalNumbers: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** The exit code a shell would give a process that ended by `signal`: 128 + its number. */
export function signalExitCode(signal: NodeJS.Signals | null): number {
  return 128 + (signal === null ? 0 : (signalNumbers[signal] ?? 0));
}

/** The real runner: child_process.spawn with shell: false. */
export class ProcessRunner implements CommandRunner {
  async runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const full = effectiveArgv(argv, options.netns);
    return checkResult(full, await this.run(argv, options));
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const full = effectiveArgv(argv, options.netns);
    const [file, ...args] = full as [string, ...string[]];
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { shell: false, stdio: ['pipe', 'pipe', 'pipe'] });
      const out = new OutputCapture();
      const err = new OutputCapture();
      let settled = false;
      let timedOut = false;
      const timer = setTimeout(() => {
        // By pid, not by process group: a command we run is one process (ip, wg); if it forked a
        // daemon (wireguard-go without -f), that daemon is meant to outlive it.
        if (child.pid !== undefined) {
          timedOut = true;
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, options.timeoutMs ?? defaultTimeoutMs);
      timer.unref();
      child.stdout.on('data', (b: Buffer) => out.add(b));
      child.stderr.on('data', (b: Buffer) => err.add(b));
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        const missing = e.code === 'ENOENT';
        reject(
          new AgentError('EXEC_FAILED', `cannot start '${commandLabel(full)}': ${e.message}`, {
            cause: e,
            hint: missing
              ? `install '${file}' (Debian: iproute2, wireguard-tools, wireguard-go) or put it on PATH`
              : 'check that the agent may execute it',
            details: { command: commandLabel(full) },
          }),
        );
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        resolve({
          stdout: out.text(),
          stderr: timedOut
            ? `${err.text()}\n(killed: no answer within ${options.timeoutMs ?? defaultTimeoutMs} ms)`
            : err.text(),
          code: code ?? signalExitCode(signal),
        });
      });
      // A child that exits before reading its input makes the write fail with EPIPE: that is its
      // exit code's story, not a separate error.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input ?? '');
    });
  }
}

/** stdout or stderr of a command, cut at maxOutputBytes. */
export class OutputCapture {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #truncated = false;

  add(b: Buffer): void {
    const room = maxOutputBytes - this.#size;
    if (room <= 0) {
      this.#truncated = true;
      return;
    }
    const part = b.length > room ? b.subarray(0, room) : b;
    if (part.length < b.length) this.#truncated = true;
    this.#chunks.push(part);
    this.#size += part.length;
  }

  text(): string {
    const s = Buffer.concat(this.#chunks).toString('utf8');
    return this.#truncated ? `${s}\n…(output cut at ${maxOutputBytes} bytes)` : s;
  }
}
