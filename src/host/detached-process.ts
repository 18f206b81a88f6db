import { spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentError } from '../errors/index.js';

export interface DetachedStartOptions {
  /** stdout and stderr are appended here (the directory is created). */
  readonly logFile: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Starts a long-lived helper (wireguard-go) that must outlive the agent: its own session and
 * process group (a Ctrl-C or SIGKILL of the agent's group does not reach it), stdin closed,
 * stdout/stderr to a log file, and not waited for. Returns its pid.
 */
export type DetachedStarter = (argv: readonly string[], options: DetachedStartOptions) => Promise<number>;

export const spawnDetached: DetachedStarter = async (argv, options) => {
  const [file, ...args] = argv;
  if (file === undefined) {
    throw new AgentError('INVALID_ARGUMENT', 'cannot start an empty command', {
      hint: 'this is a bug in the caller',
    });
  }
  await mkdir(dirname(options.logFile), { recursive: true, mode: 0o750 });
  const log = await open(options.logFile, 'a', 0o640);
  try {
    const child = spawn(file, args, {
      detached: true,
      shell: false,
      stdio: ['ignore', log.fd, log.fd],
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => {
        resolve(child.pid ?? 0);
      });
      child.once('error', (e: NodeJS.ErrnoException) => {
        reject(
          new AgentError('EXEC_FAILED', `cannot start '${argv.slice(0, 3).join(' ')}': ${e.message}`, {
            cause: e,
            hint:
              e.code === 'ENOENT'
                ? `install ${file} (Debian: apt install ${file})`
                : 'check that the agent runs as root',
          }),
        );
      });
    });
    child.unref();
    return pid;
  } finally {
    // The child has its own copy of the descriptor.
    await log.close();
  }
};

/** True while a process with this pid exists (a zombie counts until it is reaped). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends a signal by pid; a process that is already gone is fine. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
