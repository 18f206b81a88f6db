import type { LogLevel } from '../log/index.js';

/**
 * The declarative config of one host (/etc/nsm-agent/config.json, DESIGN.md §7), in two shapes:
 * `AgentConfigFile` is what a person writes (almost everything optional), `AgentConfig` is what
 * the agent runs with after defaults (see apply-defaults.ts). The JSON schema in config-schema.ts
 * describes the file shape; a unit test keeps the two in step.
 */

export const wireguardBackends = ['auto', 'kernel', 'userspace'] as const;
export type WireGuardBackend = (typeof wireguardBackends)[number];

export const updateChannels = ['stable', 'beta'] as const;
export type UpdateChannel = (typeof updateChannels)[number];

export const configLogLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type ConfigLogLevel = (typeof configLogLevels)[number];
// The config must only name levels the logger knows; this fails to compile if they drift apart.
const _levelsAreLoggerLevels: readonly LogLevel[] = configLogLevels;

export type Labels = Readonly<Record<string, string>>;

export interface MeshConfig {
  /** Control server (registry + enrolment), `tcp://host:port`. Usually written by `enroll`. */
  readonly server?: string;
  /** SPIFFE trust domain of the mesh, e.g. `mesh.example`. */
  readonly trustDomain?: string;
}

export interface ListenConfig {
  /** NSM API for local clients and endpoints. */
  readonly nsm: string;
  /** NSM API for remote agents (mTLS). */
  readonly remote: string;
  /** Local control API for the CLI. */
  readonly api: string;
  /** Prometheus `/metrics`, `host:port`. */
  readonly metrics: string;
}

/**
 * The data-plane liveness check of the agent's own connections (NSM heal's liveness check): the
 * service address is pinged from the connection's address through its interface every `intervalMs`;
 * `misses` intervals in a row without a reply make the agent reselect (another endpoint or path).
 */
export interface LivenessConfig {
  /** 0 turns the check off. */
  readonly intervalMs: number;
  readonly misses: number;
}

export interface AgentSection {
  readonly name: string;
  readonly listen: ListenConfig;
  readonly stateDir: string;
  readonly runDir: string;
  readonly liveness: LivenessConfig;
}

export interface WireGuardConfig {
  readonly port: number;
  readonly interface: string;
  readonly backend: WireGuardBackend;
}

export interface ConnectSpec {
  readonly service: string;
  /** Network namespace (name under /run/netns or absolute path); absent: the host itself. */
  readonly netns?: string;
  readonly labels: Labels;
}

export interface ExposeSpec {
  readonly service: string;
  readonly cidr: string;
  readonly labels: Labels;
  /** SPIFFE ID patterns allowed to connect; absent: members of the mesh trust domain. */
  readonly allow?: readonly string[];
}

export interface UpdateConfig {
  readonly channel: UpdateChannel;
  /** Stay on this version instead of following the channel. */
  readonly pin?: string;
}

export interface LogConfig {
  readonly level: ConfigLogLevel;
}

/** The effective config: the file with every default applied. */
export interface AgentConfig {
  readonly mesh: MeshConfig;
  readonly agent: AgentSection;
  readonly wireguard: WireGuardConfig;
  readonly connects: readonly ConnectSpec[];
  readonly exposes: readonly ExposeSpec[];
  readonly update: UpdateConfig;
  readonly log: LogConfig;
}

/** The config file as written; validated against configSchema before it is trusted to have this shape. */
export interface AgentConfigFile {
  /** Lets editors find the schema (`nsm-agent config schema > config.schema.json`); ignored by the agent. */
  readonly $schema?: string;
  readonly mesh?: MeshConfig;
  readonly agent?: {
    readonly name?: string;
    readonly listen?: Partial<ListenConfig>;
    readonly stateDir?: string;
    readonly runDir?: string;
    readonly liveness?: Partial<LivenessConfig>;
  };
  readonly wireguard?: Partial<WireGuardConfig>;
  readonly connects?: readonly {
    readonly service: string;
    readonly netns?: string;
    readonly labels?: Labels;
  }[];
  readonly exposes?: readonly {
    readonly service: string;
    readonly cidr?: string;
    readonly labels?: Labels;
    readonly allow?: readonly string[];
  }[];
  readonly update?: Partial<UpdateConfig>;
  readonly log?: Partial<LogConfig>;
}
