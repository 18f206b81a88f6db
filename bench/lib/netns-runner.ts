import type { CommandRunner, RunOptions, RunResult } from '../../src/host/command-runner.js';

/**
 * A runner whose every command runs inside one netns: for code that probes with throwaway links
 * (detectBackend), so that the probe never touches the root namespace.
 */
export class NetnsRunner implements CommandRunner {
  readonly #inner: CommandRunner;
  readonly #netns: string;

  constructor(inner: CommandRunner, netns: string) {
    this.#inner = inner;
    this.#netns = netns;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#inner.run(argv, { ...options, netns: this.#netns });
  }

  runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#inner.runChecked(argv, { ...options, netns: this.#netns });
  }
}
