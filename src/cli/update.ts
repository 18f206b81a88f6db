import { Command, Option } from 'commander';
import { updateChannels } from '../config/index.js';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

export function updateCommand(_io: CliIo): Command {
  return new Command('update')
    .summary('update from the signed release channel')
    .description(
      'update nsm-agent from its signed release channel (rolls back if the new version is unhealthy)',
    )
    .option('--check', 'only report whether an update is available')
    .addOption(
      new Option('--channel <channel>', 'release channel (default: update.channel in config)').choices(
        updateChannels,
      ),
    )
    .option('--to <version>', 'install this version instead of the newest')
    .action(() => notAvailable('update', 'self-update'));
}
