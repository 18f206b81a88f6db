import { Command } from 'commander';
import { handlersOf } from '../localapi/index.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { defaultServerDataDir } from './server.js';

/** `nsm-agent hosts …`: enrolled hosts, managed through the running control server. */
export function hostsCommand(io: CliIo): Command {
  const hosts = new Command('hosts')
    .summary('enrolled hosts (on the control server)')
    .description('enrolled hosts (run on the control server, while `nsm-agent server run` runs)');
  hosts
    .command('list')
    .description('list enrolled hosts and their identities')
    .option('--data-dir <dir>', 'control server data directory', defaultServerDataDir)
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      const rows = await (await handlersOf(io)).controlServer.listHosts(o.dataDir);
      if (o.json) {
        printJson(io, rows);
        return;
      }
      printLine(
        io.stdout,
        'HOST ID                               HOSTNAME          STATE    LAST SEEN                 SVID EXPIRES',
      );
      for (const h of rows) {
        printLine(
          io.stdout,
          `${h.hostId.padEnd(37)} ${h.hostname.padEnd(17)} ${h.state.padEnd(8)} ${h.lastSeenAt.padEnd(25)} ${h.svidExpiresAt}`,
        );
      }
    });
  hosts
    .command('revoke')
    .description("revoke a host's identity: its next renewal is refused and it leaves the mesh")
    .argument('<host>', 'host id or hostname from hosts list')
    .option('--data-dir <dir>', 'control server data directory', defaultServerDataDir)
    .action(async (host: string, o: { dataDir: string }) => {
      const h = await (await handlersOf(io)).controlServer.revokeHost(o.dataDir, host);
      printLine(io.stdout, `revoked host ${h.hostId} (${h.spiffeId})`);
    });
  return hosts;
}
