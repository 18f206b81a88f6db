import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function runCommand(_io: CliIo): Command {
  return new Command('run')
    .summary('run the agent daemon (the systemd unit)')
    .description('run the agent daemon (what the nsm-agent.service unit starts; needs root / CAP_NET_ADMIN)')
    .action(() => notAvailable('run', 'the agent daemon'));
}
