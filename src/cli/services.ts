import { Command } from 'commander';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { formatLabels, formatTable } from './agent-format.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export function servicesCommand(io: CliIo): Command {
  return withApiOption(
    new Command('services')
      .summary('list services in the mesh registry')
      .description('list the network services this agent can see in the mesh registry, with their endpoints')
      .option('--json', 'machine-readable JSON on stdout'),
  ).action(async (o: { json?: boolean }, cmd: Command) => {
    const client = await agentClient(cmd, io);
    const report = await client.services(callOptions(io));
    if (o.json) {
      printJson(io, report);
      return;
    }
    // One line per endpoint, the service repeated, so `grep` and `awk` work on it.
    const rows = report.services.flatMap((s) =>
      s.endpoints.length === 0
        ? [[s.name, '-', '-']]
        : s.endpoints.map((e) => [s.name, `${e.name}@${e.url}`, formatLabels(e.labels)]),
    );
    if (rows.length === 0)
      printLine(io.stdout, 'no services in the mesh yet (offer one: nsm-agent expose <service>)');
    else for (const line of formatTable(['SERVICE', 'ENDPOINTS', 'LABELS'], rows)) printLine(io.stdout, line);
    if (report.source === 'cache') {
      printLine(
        io.stderr,
        "note: the control server is unreachable; this list is the agent's cached copy and may be out of date",
      );
    }
  });
}
