// Runs a benchmark so that its cleanup runs on every way out: normal end, a thrown error, and
// SIGINT/SIGTERM/SIGHUP (after which the process exits with 128 + signal number).
import { rm } from 'node:fs/promises';
import { testbedDown } from '../../test/helpers/testbed.js';
import type { BenchProcesses } from './processes.js';

export async function runWithCleanup(
  main: () => Promise<void>,
  cleanup: () => Promise<void>,
): Promise<number> {
  let cleaned: Promise<void> | undefined;
  const once = (): Promise<void> => (cleaned ??= cleanup());
  const signals: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  const handlers = Object.entries(signals).map(([sig, n]) => {
    const h = (): void => {
      process.stderr.write(`\n${sig}: cleaning up…\n`);
      void once().finally(() => process.exit(128 + n));
    };
    process.on(sig as NodeJS.Signals, h);
    return [sig, h] as const;
  });
  try {
    await main();
    return 0;
  } catch (e: unknown) {
    process.stderr.write(`benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  } finally {
    await once();
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/** What a test-bed benchmark started, for the cleanup to stop and remove. */
export interface TestbedBenchState {
  procs?: BenchProcesses;
  workDir?: string;
}

/**
 * Runs a benchmark on the netns test bed `prefix` with runWithCleanup: on every way out its
 * processes are stopped by pid, the test bed is taken down and its work directory removed.
 */
export function runOnTestbed(
  prefix: string,
  main: (state: TestbedBenchState) => Promise<void>,
): Promise<number> {
  const state: TestbedBenchState = {};
  return runWithCleanup(
    () => main(state),
    async () => {
      await state.procs?.stopAll();
      await testbedDown(prefix).catch((e: unknown) => {
        process.stderr.write(`cleanup: ${String(e)}; run 'npm run testbed -- down ${prefix}'\n`);
      });
      if (state.workDir !== undefined) await rm(state.workDir, { recursive: true, force: true });
    },
  );
}
