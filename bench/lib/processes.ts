// The long-lived processes a benchmark starts (tunnel daemons, iperf3 servers): spawned without a
// shell, optionally inside a netns, output to a log file, remembered by pid and stopped by pid.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandRunner } from '../../src/host/command-runner.js';
import { effectiveArgv } from '../../src/host/command-runner.js';
import { processExists, signalProcess } from '../../src/host/detached-process.js';

export interface SpawnOptions {
  readonly netns?: string;
  /** Names the log file `<logDir>/<label>.log`. */
  readonly label: string;
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Own session (setsid), as the agent's spawnDetached starts wireguard-go. With
   * kernel.sched_autogroup_enabled=1 a new session is also a scheduling group of its own.
   */
  readonly detached?: boolean;
}

export class BenchProcesses {
  readonly runner: CommandRunner;
  readonly #logDir: string;
  readonly #pids = new Set<number>();

  constructor(runner: CommandRunner, logDir: string) {
    this.runner = runner;
    this.#logDir = logDir;
  }

  logPath(label: string): string {
    return join(this.#logDir, `${label}.log`);
  }

  /** Starts argv and returns its pid (`ip netns exec` execs, so the pid is the program's own). */
  spawn(argv: readonly string[], o: SpawnOptions): number {
    const [file, ...args] = effectiveArgv(argv, o.netns) as [string, ...string[]];
    const fd = openSync(this.logPath(o.label), 'a', 0o600);
    try {
      const child = spawn(file, args, {
        shell: false,
        stdio: ['ignore', fd, fd],
        ...(o.env === undefined ? {} : { env: o.env }),
        ...(o.detached === true ? { detached: true } : {}),
      });
      if (child.pid === undefined) throw new Error(`cannot start ${file}: is it installed?`);
      child.on('error', () => undefined);
      child.unref();
      this.#pids.add(child.pid);
      return child.pid;
    } finally {
      closeSync(fd);
    }
  }

  /** Remembers a process someone else started (wireguard-go started by the WireGuard port). */
  adopt(pid: number): void {
    this.#pids.add(pid);
  }

  get pids(): readonly number[] {
    return [...this.#pids];
  }

  async waitFor(check: () => Promise<boolean>, ms: number, failure: string): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await check()) return;
      if (Date.now() > deadline) throw new Error(failure);
      await sleep(20);
    }
  }

  /** SIGTERM, up to 2 s, then SIGKILL; each pid this object knows. */
  async stopAll(): Promise<void> {
    const pids = [...this.#pids];
    for (const pid of pids) signalProcess(pid, 'SIGTERM');
    const deadline = Date.now() + 2_000;
    while (pids.some(processExists) && Date.now() < deadline) await sleep(20);
    for (const pid of pids) if (processExists(pid)) signalProcess(pid, 'SIGKILL');
    this.#pids.clear();
  }

  async stop(pid: number): Promise<void> {
    signalProcess(pid, 'SIGTERM');
    const deadline = Date.now() + 2_000;
    while (processExists(pid) && Date.now() < deadline) await sleep(20);
    if (processExists(pid)) signalProcess(pid, 'SIGKILL');
    this.#pids.delete(pid);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
