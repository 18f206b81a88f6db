import { Command } from 'commander';
import { handlersOf } from '../localapi/index.js';
import type { TokenRow } from '../localapi/index.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { collectLabel, duration, positiveInteger } from './option-parsers.js';
import { defaultServerDataDir } from './server.js';

/** `nsm-agent token …`: enrolment tokens, managed through the running control server. */
export function tokenCommand(io: CliIo): Command {
  const token = new Command('token')
    .summary('enrolment tokens (on the control server)')
    .description('enrolment tokens (run on the control server, while `nsm-agent server run` runs)');
  token
    .command('create')
    .description('create an enrolment token for `nsm-agent enroll --token`')
    .option('--uses <n>', 'how many hosts may enrol with it', positiveInteger, 1)
    .option('--ttl <duration>', 'how long it stays valid, e.g. 10m, 1h, 7d', duration, 3_600_000)
    .option('--label <key=value>', 'label given to hosts that enrol with it (repeatable)', collectLabel)
    .option('--data-dir <dir>', 'control server data directory', defaultServerDataDir)
    .option('--json', 'machine-readable JSON on stdout')
    .action(
      async (o: {
        uses: number;
        ttl: number;
        label?: Record<string, string>;
        dataDir: string;
        json?: boolean;
      }) => {
        const r = await (
          await handlersOf(io)
        ).controlServer.createToken({
          dataDir: o.dataDir,
          ttlMs: o.ttl,
          uses: o.uses,
          labels: o.label ?? {},
        });
        if (o.json) {
          printJson(io, r);
          return;
        }
        // The token alone on stdout, so `T=$(nsm-agent token create)` works; the rest to stderr.
        printLine(io.stdout, r.token);
        printLine(
          io.stderr,
          `token ${r.info.id}: ${r.info.usesAllowed} use(s), expires ${r.info.expiresAt}; on a host: nsm-agent enroll --token <token>`,
        );
      },
    );
  token
    .command('list')
    .description('list enrolment tokens (never their secrets)')
    .option('--data-dir <dir>', 'control server data directory', defaultServerDataDir)
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      const rows = await (await handlersOf(io)).controlServer.listTokens(o.dataDir);
      if (o.json) {
        printJson(io, rows);
        return;
      }
      printLine(io.stdout, 'ID                STATE    USED  EXPIRES                   LABELS');
      for (const t of rows) printLine(io.stdout, tokenLine(t));
    });
  token
    .command('revoke')
    .description('revoke an enrolment token')
    .argument('<id>', 'token id from token list')
    .option('--data-dir <dir>', 'control server data directory', defaultServerDataDir)
    .action(async (id: string, o: { dataDir: string }) => {
      const t = await (await handlersOf(io)).controlServer.revokeToken(o.dataDir, id);
      printLine(io.stdout, `revoked token ${t.id}`);
    });
  return token;
}

function tokenLine(t: TokenRow): string {
  const labels = Object.entries(t.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${t.id.padEnd(17)} ${t.state.padEnd(8)} ${`${t.usesAllowed - t.usesLeft}/${t.usesAllowed}`.padEnd(5)} ${t.expiresAt.padEnd(25)} ${labels}`;
}
