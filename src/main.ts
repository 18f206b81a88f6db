// Must be the first import: @peculiar/x509 (identity) needs the Reflect metadata API installed
// before any of its decorators are evaluated.
import 'reflect-metadata';
import type { SecureVersion } from 'node:tls';
import { daemonProcessHooks, runCli } from './cli/index.js';
import { describe } from './errors/index.js';

/**
 * The process entry of the nsm-agent binary (and of `tsx src/main.ts`). The only module that
 * touches the real process: argv, env, stdio and the exit code. Exit codes: 0 success,
 * 1 failure, 2 usage error (see src/cli/exit-codes.ts).
 */
export async function main(argv: readonly string[]): Promise<number> {
  // Every TLS this process speaks (mesh mTLS, enrolment, etcd) is TLS 1.3: no renegotiation, so a
  // connection's peer certificate is fixed at the handshake (api/grpc reads it once per connection),
  // and no legacy cipher suites. NSM's Go components and etcd negotiate 1.3 by default.
  // (The module object, not the ESM namespace, whose bindings cannot be assigned.)
  const tls = (await import('node:tls')) as unknown as { default: { DEFAULT_MIN_VERSION: SecureVersion } };
  tls.default.DEFAULT_MIN_VERSION = 'TLSv1.3';
  // `nsm-agent config schema | head` closes the pipe early; that is the reader's choice, not a crash.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  try {
    return await runCli(argv, {
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      // Loaded on first use: --version and --help never load gRPC, the CA or the store.
      handlers: async () => (await import('./daemon/handlers.js')).handlers,
      stopSignal: stopOnSignals,
      daemon: daemonProcessHooks,
    });
  } catch (e: unknown) {
    // runCli reports every error itself; getting here means reporting failed too.
    process.stderr.write(`nsm-agent: internal error: ${describe(e)}\n`);
    return 1;
  }
}

/** Aborted on the first SIGINT or SIGTERM; a second one ends the process at once. */
function stopOnSignals(): AbortSignal {
  const ac = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (ac.signal.aborted) process.exit(130);
      ac.abort(new Error(`received ${sig}`));
    });
  }
  return ac.signal;
}

// The one effect of loading this module, and the reason it is the entry point: run the command.
// process.exitCode rather than process.exit() lets stdout drain into a pipe before the process ends.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
