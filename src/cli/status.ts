import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function statusCommand(_io: CliIo): Command {
  return new Command('status')
    .summary('show identity, mesh and connections')
    .description("show this agent's identity, mesh, connections and exposed services")
    .option('--json', 'machine-readable JSON on stdout')
    .action(() => notAvailable('status', 'agent status'));
}
