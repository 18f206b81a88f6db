import type { AgentConfig, AgentConfigFile, ConnectSpec, ExposeSpec } from './agent-config.js';

/** Where the systemd unit and the CLI look for the config unless told otherwise (DESIGN.md §7). */
export const defaultConfigPath = '/etc/nsm-agent/config.json';

/**
 * Built-in defaults. Ports follow NSM's conventions (nsmgr 5001, WireGuard 51820); 169.254.0.0/16
 * is NSM's default IPAM range. The schema shows these same values as `default` so editors and
 * `nsm-agent config schema` document them.
 */
export const configDefaults = {
  runDir: '/run/nsm-agent',
  stateDir: '/var/lib/nsm-agent',
  remote: 'tcp://:5001',
  metrics: '127.0.0.1:9464',
  wireguardPort: 51820,
  wireguardInterface: 'nsm-wg0',
  wireguardBackend: 'auto',
  exposeCidr: '169.254.0.0/16',
  updateChannel: 'stable',
  logLevel: 'info',
  livenessIntervalMs: 1_000,
  livenessMisses: 3,
} as const;

/** The local sockets live in runDir, so moving runDir (e.g. a second agent on a test bed) moves them too. */
export function defaultSocketUrl(runDir: string, name: 'nsm' | 'api'): string {
  return `unix://${runDir}/${name}.sock`;
}

export interface DefaultsContext {
  /** The agent name when the file has none; the daemon passes the host name. */
  readonly hostname: string;
}

/**
 * The effective config for a validated file. Pure: the file object is not changed and nothing
 * is written: defaults are never filled into the file itself.
 */
export function applyDefaults(file: AgentConfigFile, context: DefaultsContext): AgentConfig {
  const agent = file.agent ?? {};
  const runDir = agent.runDir ?? configDefaults.runDir;
  const listen = agent.listen ?? {};
  const wireguard = file.wireguard ?? {};
  return {
    mesh: { ...file.mesh },
    agent: {
      name: agent.name ?? context.hostname,
      listen: {
        nsm: listen.nsm ?? defaultSocketUrl(runDir, 'nsm'),
        remote: listen.remote ?? configDefaults.remote,
        api: listen.api ?? defaultSocketUrl(runDir, 'api'),
        metrics: listen.metrics ?? configDefaults.metrics,
      },
      stateDir: agent.stateDir ?? configDefaults.stateDir,
      runDir,
      liveness: {
        intervalMs: agent.liveness?.intervalMs ?? configDefaults.livenessIntervalMs,
        misses: agent.liveness?.misses ?? configDefaults.livenessMisses,
      },
    },
    wireguard: {
      port: wireguard.port ?? configDefaults.wireguardPort,
      interface: wireguard.interface ?? configDefaults.wireguardInterface,
      backend: wireguard.backend ?? configDefaults.wireguardBackend,
    },
    connects: (file.connects ?? []).map((c): ConnectSpec => ({
      service: c.service,
      ...(c.netns === undefined ? {} : { netns: c.netns }),
      labels: { ...c.labels },
    })),
    exposes: (file.exposes ?? []).map((e): ExposeSpec => ({
      service: e.service,
      cidr: e.cidr ?? configDefaults.exposeCidr,
      labels: { ...e.labels },
      ...(e.allow === undefined ? {} : { allow: [...e.allow] }),
    })),
    update: {
      channel: file.update?.channel ?? configDefaults.updateChannel,
      ...(file.update?.pin === undefined ? {} : { pin: file.update.pin }),
    },
    log: { level: file.log?.level ?? configDefaults.logLevel },
  };
}
