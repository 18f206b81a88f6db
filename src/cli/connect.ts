import { Command } from 'commander';
import type { ConnectionRow } from '../localapi/index.js';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { bareAddress, formatSeconds } from './agent-format.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { collectLabel } from './option-parsers.js';

export function connectCommand(io: CliIo): Command {
  return withApiOption(
    new Command('connect')
      .summary('connect this host or a netns to a service')
      .description(
        'connect this host (or a network namespace on it) to a mesh service; returns once the connection is up',
      )
      .argument('<service>', 'network service name, e.g. db-net')
      .option('--netns <name|path>', 'network namespace to connect instead of the host')
      .option('--label <key=value>', 'label sent with the request (repeatable)', collectLabel)
      .option('--json', 'the connection as JSON on stdout'),
  ).action(
    async (
      service: string,
      o: { netns?: string; label?: Record<string, string>; json?: boolean },
      cmd: Command,
    ) => {
      const client = await agentClient(cmd, io);
      const row = await client.connect(
        { service, ...(o.netns === undefined ? {} : { netns: o.netns }), labels: o.label ?? {} },
        callOptions(io),
      );
      if (o.json) printJson(io, row);
      else printConnection(io, row, 'connected');
    },
  );
}

/** One short block a person reads: what to connect to, from which address, over which interface. */
export function printConnection(io: CliIo, row: ConnectionRow, verb: string): void {
  const where = row.netns === undefined ? '' : ` in netns ${row.netns}`;
  printLine(io.stdout, `${verb} ${row.service}${where}: ${row.state}`);
  const service = row.serviceAddresses.map(bareAddress).join(', ') || '-';
  printLine(
    io.stdout,
    `  service address  ${service}${row.dnsName === undefined ? '' : `  (${row.dnsName})`}`,
  );
  const local = row.localAddresses.join(', ') || '-';
  printLine(
    io.stdout,
    `  local address    ${local}${row.interface === undefined ? '' : ` on ${row.interface}`}`,
  );
  if (row.endpoint !== undefined) {
    printLine(
      io.stdout,
      `  served by        ${row.endpoint}${row.remoteUrl === undefined ? '' : ` at ${row.remoteUrl}`}`,
    );
  }
  if (row.handshakeAgeSeconds !== undefined) {
    printLine(io.stdout, `  last handshake   ${formatSeconds(row.handshakeAgeSeconds)} ago`);
  }
  if (row.lastError !== undefined) printLine(io.stdout, `  last error       ${row.lastError}`);
}
