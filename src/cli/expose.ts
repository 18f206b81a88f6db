import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';
import { collect, collectLabel } from './option-parsers.js';

export function exposeCommand(_io: CliIo): Command {
  return new Command('expose')
    .summary('offer a host process as a mesh service')
    .description('offer a process on this host to the mesh as a network service (<service>.nsm)')
    .argument('<service>', 'network service name, e.g. payments')
    .option('--cidr <cidr>', 'address range for connections (default 169.254.0.0/16)')
    .option(
      '--allow <spiffe-id-pattern>',
      'who may connect, e.g. spiffe://mesh.example/agent/* (repeatable)',
      collect,
    )
    .option('--label <key=value>', 'label on the registered endpoint (repeatable)', collectLabel)
    .action(() => notAvailable('expose', 'exposing a service'));
}
