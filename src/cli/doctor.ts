import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function doctorCommand(_io: CliIo): Command {
  return new Command('doctor')
    .summary('check this host for what the agent needs')
    .description(
      'check that this host has what the agent needs (WireGuard, capabilities, ports, clock, mesh reachability)',
    )
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('doctor', 'host checks'));
}
