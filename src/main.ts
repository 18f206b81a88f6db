// Must be the first import: @peculiar/x509 (identity) needs the Reflect metadata API installed
// before any of its decorators are evaluated.
import 'reflect-metadata';
import { runCli } from './cli/index.js';
import { describe } from './errors/index.js';

/**
 * The process entry of the nsm-agent binary (and of `tsx src/main.ts`). The only module that
 * touches the real process: argv, env, stdio and the exit code. Exit codes: 0 success,
 * 1 failure, 2 usage error (see src/cli/exit-codes.ts).
 */
export async function main(argv: readonly string[]): Promise<number> {
  // `nsm-agent config schema | head` closes the pipe early; that is the reader's choice, not a crash.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  try {
    return await runCli(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env });
  } catch (e: unknown) {
    // runCli reports every error itself; getting here means reporting failed too.
    process.stderr.write(`nsm-agent: internal error: ${describe(e)}\n`);
    return 1;
  }
}

// The one effect of loading this module, and the reason it is the entry point: run the command.
// process.exitCode rather than process.exit() lets stdout drain into a pipe before the process ends.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
