import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { AgentError } from '../errors/index.js';
import { handlersOf } from '../localapi/index.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export const defaultStateDir = '/var/lib/nsm-agent';

interface EnrollOptions {
  token?: string;
  tokenFile?: string;
  stateDir: string;
  replace?: boolean;
  json?: boolean;
}

export function enrollCommand(io: CliIo): Command {
  return new Command('enroll')
    .summary('join this host to a mesh with a token')
    .description(
      'join this host to a mesh with an enrolment token and get its SPIFFE identity\n' +
        '(prefer --token-file: a token in argv is visible to other users in the process list while enrolling)',
    )
    .option('--token <token>', 'enrolment token from `nsm-agent token create` on the control server')
    .option('--token-file <file>', "read the token from a file, or from standard input with '-'")
    .option('--state-dir <dir>', 'agent state directory (identity goes to <dir>/identity)', defaultStateDir)
    .option('--replace', 'enrol again even if this host already has a valid identity')
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: EnrollOptions, cmd: Command) => {
      if ((o.token === undefined) === (o.tokenFile === undefined)) {
        // commander prints this and exits 2 (usage), as for any other option error.
        cmd.error('error: give the token with exactly one of --token <token> or --token-file <file>', {
          exitCode: 2,
          code: 'commander.missingMandatoryOptionValue',
        });
      }
      const token = await tokenFrom(o);
      const r = await (
        await handlersOf(io)
      ).agent.enroll({
        token,
        stateDir: o.stateDir,
        replace: o.replace === true,
      });
      if (o.json) {
        printJson(io, r);
        return;
      }
      printLine(
        io.stdout,
        `enrolled as ${r.spiffeId} in mesh ${r.trustDomain}; identity valid until ${r.expiresAt}`,
      );
    });
}

async function tokenFrom(o: EnrollOptions): Promise<string> {
  if (o.token !== undefined) return o.token.trim();
  const file = o.tokenFile ?? '-';
  try {
    const text = await readFile(file === '-' ? '/dev/stdin' : file, 'utf8');
    return text.trim();
  } catch (e: unknown) {
    throw AgentError.wrap(
      e,
      'INVALID_ARGUMENT',
      `cannot read the token from ${file}`,
      'check the path and its permissions',
    );
  }
}
