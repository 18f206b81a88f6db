import { Command } from 'commander';
import { handlersOf } from '../localapi/index.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export const defaultStateDir = '/var/lib/nsm-agent';

export function enrollCommand(io: CliIo): Command {
  return new Command('enroll')
    .summary('join this host to a mesh with a token')
    .description('join this host to a mesh with an enrolment token and get its SPIFFE identity')
    .requiredOption('--token <token>', 'enrolment token from `nsm-agent token create` on the control server')
    .option('--state-dir <dir>', 'agent state directory (identity goes to <dir>/identity)', defaultStateDir)
    .option('--replace', 'enrol again even if this host already has a valid identity')
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: { token: string; stateDir: string; replace?: boolean; json?: boolean }) => {
      const r = await (
        await handlersOf(io)
      ).agent.enroll({
        token: o.token,
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
