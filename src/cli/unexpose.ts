import { Command } from 'commander';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export function unexposeCommand(io: CliIo): Command {
  return withApiOption(
    new Command('unexpose')
      .summary('stop offering an exposed service')
      .description(
        'stop offering a service exposed with expose: unregister its endpoint and close its connections',
      )
      .argument('<service>', 'network service name')
      .option('--json', 'the removed service as JSON on stdout'),
  ).action(async (service: string, o: { json?: boolean }, cmd: Command) => {
    const client = await agentClient(cmd, io);
    const row = await client.unexpose({ service }, callOptions(io));
    if (o.json) {
      printJson(io, row);
      return;
    }
    const closed = row.connections === 0 ? '' : `; closed ${row.connections} connection(s) from consumers`;
    printLine(io.stdout, `unexposed ${row.service} (endpoint ${row.endpoint} unregistered${closed})`);
  });
}
