import { hostname as osHostname } from 'node:os';
import { applyDefaults, loadConfig } from '../../config/index.js';
import type { AgentConfigFile } from '../../config/index.js';
import { describe } from '../../errors/index.js';
import { systemClock, systemRandom } from '../../host/index.js';
import { notifySystemd, watchdogInterval } from '../../host/systemd-notify.js';
import { createLogger } from '../../log/index.js';
import type { Logger, LogLevel } from '../../log/index.js';
import type { AgentReadyInfo, AgentRunOptions } from '../../localapi/index.js';
import { startAgent } from './agent.js';

/**
 * `nsm-agent run`: loads the config (command-line options win over the file), starts the agent,
 * tells systemd it is ready (Type=notify), serves until `signal`, and stops without touching the
 * data plane — connections keep passing traffic while the agent restarts, and the next start
 * adopts them.
 */
export async function runAgent(
  options: AgentRunOptions,
  signal: AbortSignal,
  ready: (info: AgentReadyInfo) => void,
): Promise<void> {
  const loaded = await loadConfig(options.config);
  const file = withOverrides(loaded.file, options);
  const config = applyDefaults(file, { hostname: osHostname() });
  const log = createLogger({ level: (options.logLevel ?? config.log.level) as LogLevel });
  const agent = await startAgent({
    config,
    configPath: loaded.path,
    configuredName: file.agent?.name,
    ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }),
    ...(options.hostsFile === undefined ? {} : { hostsFile: options.hostsFile }),
    log,
    clock: systemClock,
    random: systemRandom,
  });
  const watchdog = startWatchdog(log);
  await notify(log, `READY=1\nSTATUS=serving as ${agent.spiffeId}`);
  ready({
    spiffeId: agent.spiffeId,
    publicUrl: agent.publicUrl,
    api: agent.listen.api,
    nsm: agent.listen.nsm,
    metrics: agent.listen.metrics,
    log,
  });
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  log.info('stopping: signal received (the data plane stays up)');
  await notify(log, 'STOPPING=1');
  if (watchdog) clearInterval(watchdog);
  await agent.close();
}

function withOverrides(file: AgentConfigFile, o: AgentRunOptions): AgentConfigFile {
  const agent = file.agent ?? {};
  const listen = {
    ...agent.listen,
    ...(o.listenNsm === undefined ? {} : { nsm: o.listenNsm }),
    ...(o.listenRemote === undefined ? {} : { remote: o.listenRemote }),
    ...(o.listenApi === undefined ? {} : { api: o.listenApi }),
    ...(o.listenMetrics === undefined ? {} : { metrics: o.listenMetrics }),
  };
  return {
    ...file,
    agent: {
      ...agent,
      listen,
      ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }),
      ...(o.runDir === undefined ? {} : { runDir: o.runDir }),
    },
    wireguard: {
      ...file.wireguard,
      ...(o.wireguardPort === undefined ? {} : { port: o.wireguardPort }),
      ...(o.wireguardInterface === undefined ? {} : { interface: o.wireguardInterface }),
    },
  };
}

async function notify(log: Logger, state: string): Promise<void> {
  try {
    await notifySystemd(state);
  } catch (e: unknown) {
    log.warn({ err: describe(e) }, 'could not notify systemd');
  }
}

/** systemd's watchdog (WatchdogSec=): pinged at half its interval while the event loop runs. */
function startWatchdog(log: Logger): ReturnType<typeof setInterval> | undefined {
  const ms = watchdogInterval();
  if (ms === undefined) return undefined;
  const t = setInterval(() => void notify(log, 'WATCHDOG=1'), ms);
  t.unref();
  return t;
}
