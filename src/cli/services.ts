import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function servicesCommand(_io: CliIo): Command {
  return new Command('services')
    .summary('list services in the mesh registry')
    .description('list the network services this agent can see in the mesh registry')
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('services', 'listing mesh services'));
}
