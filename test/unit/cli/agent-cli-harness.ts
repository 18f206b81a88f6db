import { runCli } from '../../../src/cli/index.js';
import type { CliIo } from '../../../src/cli/index.js';
import type { Handlers } from '../../../src/localapi/index.js';
import type { CliResult } from './cli-harness.js';

export interface CliWith {
  readonly env?: Readonly<Record<string, string>>;
  readonly handlers?: Partial<Handlers>;
  readonly stopSignal?: AbortSignal;
}

/** Like cli(), with the runtime pieces main hands in: handlers (fakes) and the stop signal. */
export async function cliWith(argv: readonly string[], options: CliWith = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const { handlers, stopSignal } = options;
  const io: CliIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: options.env ?? {},
    ...(handlers === undefined ? {} : { handlers: () => Promise.resolve(handlers as Handlers) }),
    ...(stopSignal === undefined ? {} : { stopSignal: () => stopSignal }),
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
