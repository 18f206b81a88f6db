import { Command } from 'commander';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export function disconnectCommand(io: CliIo): Command {
  return withApiOption(
    new Command('disconnect')
      .summary('close a connection made with connect')
      .description('close a connection made with connect')
      .argument('<service>', 'network service name')
      .option('--netns <name|path>', 'network namespace the connection was made for')
      .option('--json', 'the closed connection as JSON on stdout'),
  ).action(async (service: string, o: { netns?: string; json?: boolean }, cmd: Command) => {
    const client = await agentClient(cmd, io);
    const row = await client.disconnect(
      { service, ...(o.netns === undefined ? {} : { netns: o.netns }) },
      callOptions(io),
    );
    if (o.json) {
      printJson(io, row);
      return;
    }
    const where = row.netns === undefined ? '' : ` in netns ${row.netns}`;
    const addresses = row.localAddresses.length === 0 ? '' : ` (removed ${row.localAddresses.join(', ')})`;
    printLine(io.stdout, `disconnected ${row.service}${where}${addresses}`);
  });
}
