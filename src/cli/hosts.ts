import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

/** `nsm-agent hosts …`: enrolled hosts, managed on the control server. */
export function hostsCommand(_io: CliIo): Command {
  const hosts = new Command('hosts')
    .summary('enrolled hosts (on the control server)')
    .description('enrolled hosts (run on the control server)');
  hosts
    .command('list')
    .description('list enrolled hosts and their identities')
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('hosts list', 'listing hosts'));
  hosts
    .command('revoke')
    .description("revoke a host's identity so it can no longer reach the mesh")
    .argument('<host>', 'host id or name from hosts list')
    .action(() => notAvailable('hosts revoke', 'revoking hosts'));
  return hosts;
}
