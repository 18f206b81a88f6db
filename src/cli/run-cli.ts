import { CommanderError } from 'commander';
import { AgentError, describe } from '../errors/index.js';
import { printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { ExitCode, exitCodeFor, SilentExit } from './exit-codes.js';
import type { ExitCodeValue } from './exit-codes.js';
import { buildProgram } from './program.js';

/**
 * Runs one command line (without `node` and the script) and returns the exit code; never calls
 * process.exit, so tests run it in-process and main decides how the process ends. Errors are
 * printed here, on stderr: the message, then the hint on its own line.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCodeValue> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
  } catch (e: unknown) {
    const verbose = ['debug', 'trace'].includes(String(program.opts<{ logLevel?: string }>().logLevel));
    report(io, e, verbose);
    return exitCodeFor(e);
  }
}

function report(io: CliIo, e: unknown, verbose: boolean): void {
  // commander has printed its own message (and the --help pointer); SilentExit printed its result.
  if (e instanceof CommanderError || e instanceof SilentExit) return;
  if (e instanceof AgentError) {
    const suffix = e.hint === undefined ? '' : `; ${e.hint}`;
    const message =
      suffix !== '' && e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message;
    printLine(io.stderr, `error: ${message}`);
    if (e.hint !== undefined && e.hint !== '') printLine(io.stderr, `hint: ${e.hint}`);
    if (verbose && e.cause !== undefined) printLine(io.stderr, `cause: ${describe(e.cause)}`);
    return;
  }
  printLine(io.stderr, `error: internal: ${describe(e)}`);
  if (verbose && e instanceof Error && e.stack !== undefined) printLine(io.stderr, e.stack);
  printLine(
    io.stderr,
    "hint: this is a bug in nsm-agent; please report it with the output of 'nsm-agent version'",
  );
}
