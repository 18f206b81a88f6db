import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';
import { positiveInteger } from './option-parsers.js';

/** `nsm-agent token …`: enrolment tokens, managed on the control server. */
export function tokenCommand(_io: CliIo): Command {
  const token = new Command('token')
    .summary('enrolment tokens (on the control server)')
    .description('enrolment tokens (run on the control server)');
  token
    .command('create')
    .description('create an enrolment token for `nsm-agent enroll --token`')
    .option('--uses <n>', 'how many hosts may enrol with it', positiveInteger, 1)
    .option('--ttl <duration>', 'how long it stays valid, e.g. 1h, 7d', '24h')
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('token create', 'creating enrolment tokens'));
  token
    .command('list')
    .description('list enrolment tokens (never their secrets)')
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('token list', 'listing enrolment tokens'));
  token
    .command('revoke')
    .description('revoke an enrolment token')
    .argument('<id>', 'token id from token list')
    .action(() => notAvailable('token revoke', 'revoking enrolment tokens'));
  return token;
}
