import { Command, InvalidArgumentError } from 'commander';
import { handlersOf } from '../localapi/index.js';
import type { AgentRunOptions } from '../localapi/index.js';
import { globalOptions, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

interface RunFlags {
  stateDir?: string;
  runDir?: string;
  listenNsm?: string;
  listenRemote?: string;
  listenApi?: string;
  listenMetrics?: string;
  publicUrl?: string;
  wireguardPort?: number;
  wireguardInterface?: string;
  hostsFile?: string;
}

/** `nsm-agent run`: the agent daemon, until SIGINT/SIGTERM. Every flag overrides the config file. */
export function runCommand(io: CliIo): Command {
  return new Command('run')
    .summary('run the agent daemon (the systemd unit)')
    .description(
      'run the agent daemon until SIGINT/SIGTERM (what the nsm-agent.service unit starts; needs root / CAP_NET_ADMIN);\n' +
        'each option overrides the config file (--config)',
    )
    .option(
      '--state-dir <dir>',
      'state directory: identity, CLI connects/exposes (default /var/lib/nsm-agent)',
    )
    .option('--run-dir <dir>', 'runtime directory for the sockets (default /run/nsm-agent)')
    .option('--listen-nsm <url>', 'NSM API for local clients (default unix://<run-dir>/nsm.sock)')
    .option('--listen-remote <url>', 'mTLS NSM API for remote agents (default tcp://:5001)')
    .option('--listen-api <url>', 'local API for the CLI (default unix://<run-dir>/api.sock)')
    .option('--listen-metrics <host:port>', 'Prometheus /metrics (default 127.0.0.1:9464)')
    .option(
      '--public-url <url>',
      'the URL remote agents dial (default: --listen-remote with the first non-loopback IPv4)',
    )
    .option('--wireguard-port <port>', 'WireGuard UDP port (default 51820)', port)
    .option('--wireguard-interface <name>', 'WireGuard device name (default nsm-wg0)')
    .option(
      '--hosts-file <path|none>',
      "where connected services' <service>.nsm names go (default /etc/hosts; none: nowhere)",
    )
    .action(async (flags: RunFlags, cmd: Command) => {
      const global = globalOptions(cmd, io);
      const options: AgentRunOptions = {
        config: global.configPath,
        ...defined(flags),
        ...(global.logLevel === undefined ? {} : { logLevel: global.logLevel }),
      };
      const signal = io.stopSignal?.() ?? new AbortController().signal;
      io.daemon?.starting();
      await (
        await handlersOf(io)
      ).agent.run(options, signal, (info) => {
        printLine(
          io.stderr,
          `nsm-agent ready as ${info.spiffeId}: remote agents dial ${info.publicUrl}; local API ${info.api}; NSM API ${info.nsm}; metrics ${info.metrics}`,
        );
        io.daemon?.ready(info.log);
      });
    });
}

/** The flags given, without commander's undefined entries (AgentRunOptions has exact optionals). */
function defined(flags: RunFlags): Omit<AgentRunOptions, 'config' | 'logLevel'> {
  return Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
}

function port(value: string): number {
  const n = /^[0-9]{1,5}$/.test(value) ? Number(value) : 0;
  if (n < 1 || n > 65_535) throw new InvalidArgumentError(`expected a UDP port 1-65535, got '${value}'`);
  return n;
}
