import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function unexposeCommand(_io: CliIo): Command {
  return new Command('unexpose')
    .summary('stop offering an exposed service')
    .description('stop offering a service exposed with expose')
    .argument('<service>', 'network service name')
    .action(() => notAvailable('unexpose', 'withdrawing an exposed service'));
}
