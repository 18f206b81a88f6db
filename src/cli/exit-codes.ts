import { CommanderError } from 'commander';

/** Process exit codes of every nsm-agent command; scripts and the installer rely on them. */
export const ExitCode = {
  ok: 0,
  /** The command ran and failed (bad config, daemon unreachable, not available yet …). */
  failure: 1,
  /** The command line itself is wrong: unknown command or option, missing argument. */
  usage: 2,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * Thrown by an action that has already written its own result (e.g. `config validate --json` on a
 * bad file) and only needs a non-zero exit code; runCli prints nothing more for it.
 */
export class SilentExit extends Error {
  override readonly name = 'SilentExit';
  readonly exitCode: ExitCodeValue;

  constructor(exitCode: ExitCodeValue) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
  }
}

// commander reports these after printing help or the version on request: not failures.
const informational = new Set(['commander.helpDisplayed', 'commander.version']);

export function exitCodeFor(e: unknown): ExitCodeValue {
  if (e instanceof SilentExit) return e.exitCode;
  if (e instanceof CommanderError) {
    if (informational.has(e.code)) return ExitCode.ok;
    // `help` on request exits 0; help printed because a subcommand was missing is a usage error.
    if (e.code === 'commander.help') return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return ExitCode.usage;
  }
  // Everything else failed while running: an AgentError with its message, or a bug.
  return ExitCode.failure;
}
