import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { LocalApiClient, defaultLocalApiUrl } from '../localapi/index.js';
import type { LocalApiCallOptions } from '../localapi/index.js';
import { globalOptions } from './cli-io.js';
import type { CliIo } from './cli-io.js';

/** Points the CLI at another agent's local API (tests and demos run several agents on one host). */
export const agentApiEnvVar = 'NSM_AGENT_API';

/** `--api <url>` on every command that talks to the running agent. */
export function withApiOption(cmd: Command): Command {
  return cmd.option(
    '--api <url>',
    `the agent's local API (default: $${agentApiEnvVar}, else agent.listen.api from the config, else ${defaultLocalApiUrl})`,
  );
}

/**
 * The client for the agent this command talks to: --api, else $NSM_AGENT_API, else the config
 * file's agent.listen.api (what the daemon listens on when started with that file), else the default.
 */
export async function agentClient(cmd: Command, io: CliIo): Promise<LocalApiClient> {
  return new LocalApiClient(await agentApiUrl(cmd, io));
}

async function agentApiUrl(cmd: Command, io: CliIo): Promise<string> {
  const flag = cmd.opts<{ api?: string }>().api;
  if (flag !== undefined) return flag;
  const fromEnv = io.env[agentApiEnvVar];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const loaded = await loadConfig(globalOptions(cmd, io).configPath);
  return loaded.config.agent.listen.api;
}

/** Ctrl-C abandons the call, and the daemon sees the request go away. */
export function callOptions(io: CliIo): LocalApiCallOptions {
  const signal = io.stopSignal?.();
  return signal === undefined ? {} : { signal };
}
