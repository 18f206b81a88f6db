import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function disconnectCommand(_io: CliIo): Command {
  return new Command('disconnect')
    .summary('close a connection made with connect')
    .description('close a connection made with connect')
    .argument('<service>', 'network service name')
    .option('--netns <name|path>', 'network namespace the connection was made for')
    .action(() => notAvailable('disconnect', 'closing a connection'));
}
