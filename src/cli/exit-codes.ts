import { CommanderError } from 'commander';
import { AgentError } from '../errors/index.js';
import { SilentExit } from './cli-io.js';

/** Process exit codes of every nsm-agent command; scripts and the installer rely on them. */
export const ExitCode = {
  ok: 0,
  /** The command ran and failed (bad config, daemon unreachable, not available yet …). */
  failure: 1,
  /** The command line itself is wrong: unknown command or option, missing argument. */
  usage: 2,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

// commander reports these after printing help or the version on request: not failures.
const informational = new Set(['commander.helpDisplayed', 'commander.version']);

export function exitCodeFor(e: unknown): ExitCodeValue {
  if (e instanceof SilentExit)
    return e.exitCode === 0 ? ExitCode.ok : e.exitCode === 2 ? ExitCode.usage : ExitCode.failure;
  if (e instanceof CommanderError) {
    if (informational.has(e.code)) return ExitCode.ok;
    // `help` on request exits 0; help printed because a subcommand was missing is a usage error.
    if (e.code === 'commander.help') return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return ExitCode.usage;
  }
  if (e instanceof AgentError) return ExitCode.failure;
  return ExitCode.failure;
}
