import { runCli } from '../../../src/cli/index.js';
import type { CliIo } from '../../../src/cli/index.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command line in-process with captured output and the given environment (empty by default). */
export async function cli(
  argv: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
