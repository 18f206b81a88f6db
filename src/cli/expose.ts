import { Command } from 'commander';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { bareAddress, formatLabels } from './agent-format.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { collect, collectLabel } from './option-parsers.js';

export function exposeCommand(io: CliIo): Command {
  return withApiOption(
    new Command('expose')
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
      .option('--json', 'the exposed service as JSON on stdout'),
  ).action(
    async (
      service: string,
      o: { cidr?: string; allow?: string[]; label?: Record<string, string>; json?: boolean },
      cmd: Command,
    ) => {
      const client = await agentClient(cmd, io);
      const row = await client.expose(
        {
          service,
          ...(o.cidr === undefined ? {} : { cidr: o.cidr }),
          labels: o.label ?? {},
          ...(o.allow === undefined ? {} : { allow: o.allow }),
        },
        callOptions(io),
      );
      if (o.json) {
        printJson(io, row);
        return;
      }
      printLine(io.stdout, `exposed ${row.service} as ${row.dnsName} (${bareAddress(row.serviceAddress)})`);
      printLine(io.stdout, `  endpoint      ${row.endpoint}, connections from ${row.cidr}`);
      const who = row.allow.length === 0 ? 'every member of the mesh' : row.allow.join(', ');
      printLine(io.stdout, `  allowed       ${who}`);
      if (Object.keys(row.labels).length > 0)
        printLine(io.stdout, `  labels        ${formatLabels(row.labels)}`);
      if (row.registration === 'queued') {
        printLine(
          io.stdout,
          '  registration  queued: the control server is unreachable; the agent registers it when the server is back',
        );
      } else {
        printLine(io.stdout, '  registration  registered with the control server');
      }
    },
  );
}
