import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';
import { collectLabel } from './option-parsers.js';

export function connectCommand(_io: CliIo): Command {
  return new Command('connect')
    .summary('connect this host or a netns to a service')
    .description('connect this host (or a network namespace on it) to a mesh service')
    .argument('<service>', 'network service name, e.g. db-net')
    .option('--netns <name|path>', 'network namespace to connect instead of the host')
    .option('--label <key=value>', 'label sent with the request (repeatable)', collectLabel)
    .action(() => notAvailable('connect', 'connecting to a service'));
}
