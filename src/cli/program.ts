import { Command, Option } from 'commander';
import { configLogLevels, defaultConfigPath } from '../config/index.js';
import { agentVersion } from '../util/index.js';
import { configEnvVar } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { configCommand } from './config.js';
import { connectCommand } from './connect.js';
import { disconnectCommand } from './disconnect.js';
import { doctorCommand } from './doctor.js';
import { enrollCommand } from './enroll.js';
import { exposeCommand } from './expose.js';
import { hostsCommand } from './hosts.js';
import { runCommand } from './run.js';
import { serverCommand } from './server.js';
import { servicesCommand } from './services.js';
import { statusCommand } from './status.js';
import { tokenCommand } from './token.js';
import { unexposeCommand } from './unexpose.js';
import { updateCommand } from './update.js';
import { versionCommand } from './version.js';

/**
 * The whole command tree, in the order `--help` shows it, grouped as the product is: the agent on
 * this host, the workloads it connects and exposes, the control server, and upkeep. Building it
 * has no side effects; subcommands load heavy modules (gRPC, pino, x509) only when they run.
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('nsm-agent')
    .description(
      'Network Service Mesh host agent: joins this host to a mesh and connects legacy workloads to it',
    )
    .version(agentVersion(), '-V, --version', 'print the version and exit')
    .option('--config <path>', `config file (default: ${defaultConfigPath}, or $${configEnvVar})`)
    .addOption(
      new Option('--log-level <level>', 'log level, overrides log.level from the config').choices(
        configLogLevels,
      ),
    )
    .addHelpText('after', '\nExit codes: 0 success, 1 failure, 2 usage error.');

  const groups: readonly (readonly [string, readonly Command[]])[] = [
    ['Agent:', [runCommand(io), enrollCommand(io), statusCommand(io), doctorCommand(io)]],
    [
      'Workloads:',
      [
        connectCommand(io),
        disconnectCommand(io),
        exposeCommand(io),
        unexposeCommand(io),
        servicesCommand(io),
      ],
    ],
    ['Control server:', [serverCommand(io), tokenCommand(io), hostsCommand(io)]],
    ['Maintenance:', [updateCommand(io), configCommand(io), versionCommand(io)]],
  ];
  for (const [heading, commands] of groups) {
    for (const c of commands) program.addCommand(c.helpGroup(heading));
  }
  // The implicit `help` command joins the last group instead of a lone "Commands:" heading.
  program.commandsGroup('Maintenance:').helpCommand('help [command]', 'show help for a command');
  configureTree(program, io);
  return program;
}

/**
 * Settings every command in the tree needs. Subcommands built with `new Command()` inherit nothing,
 * so this walks the finished tree: never process.exit (runCli maps errors to exit codes), write
 * through io, and point at the right --help after a usage error.
 */
function configureTree(cmd: Command, io: CliIo): void {
  cmd
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError(`(run '${commandPath(cmd)} --help' for usage)`)
    .configureHelp({ showGlobalOptions: true });
  for (const sub of cmd.commands) configureTree(sub, io);
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
