import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function enrollCommand(_io: CliIo): Command {
  return new Command('enroll')
    .summary('join this host to a mesh with a token')
    .description('join this host to a mesh with a one-time enrolment token and get its SPIFFE identity')
    .requiredOption('--token <token>', 'enrolment token from `nsm-agent token create` on the control server')
    .action(() => notAvailable('enroll', 'enrolment into a mesh'));
}
