import { AgentError } from '../errors/index.js';
import type { AgentReadyInfo, AgentRunOptions } from './agent-control.js';

/**
 * The contract between the CLI and the runtime: what the CLI asks of the rest of the product for commands that do more than read config. The CLI
 * only declares the shapes; main hands in the implementations (from daemon/), loaded lazily so
 * `--version` and `--help` never load gRPC, the CA or the store.
 */
export interface TokenRow {
  readonly id: string;
  readonly state: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly usesAllowed: number;
  readonly usesLeft: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface HostRow {
  readonly hostId: string;
  readonly hostname: string;
  readonly spiffeId: string;
  readonly state: 'active' | 'revoked';
  readonly enrolledAt: string;
  readonly lastSeenAt: string;
  readonly svidExpiresAt: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ServerRunOptions {
  readonly dataDir: string;
  readonly listen?: string;
  readonly publicUrl?: string;
  readonly store?: string;
  /** TLS files for an etcds:// store: the CA of etcd's server certificates, and a client pair. */
  readonly storeCa?: string;
  readonly storeCert?: string;
  readonly storeKey?: string;
  readonly logLevel: string;
}

export interface ControlServerHandlers {
  init(options: { trustDomain: string; dataDir: string }): Promise<{
    trustDomain: string;
    dataDir: string;
    caPin: string;
    serverSpiffeId: string;
  }>;
  /** Serves until `signal` aborts; `ready` is called once it listens. */
  run(
    options: ServerRunOptions,
    signal: AbortSignal,
    ready: (info: { url: string; publicUrl: string; adminSocket: string; store: string }) => void,
  ): Promise<void>;
  issue(options: { dataDir: string; spiffeId: string; outDir: string; ttlMs?: number }): Promise<{
    spiffeId: string;
    certPath: string;
    keyPath: string;
    bundlePath: string;
    expiresAt: string;
  }>;
  createToken(options: {
    dataDir: string;
    ttlMs: number;
    uses: number;
    labels: Readonly<Record<string, string>>;
  }): Promise<{ token: string; info: TokenRow }>;
  listTokens(dataDir: string): Promise<readonly TokenRow[]>;
  revokeToken(dataDir: string, id: string): Promise<TokenRow>;
  listHosts(dataDir: string): Promise<readonly HostRow[]>;
  revokeHost(dataDir: string, host: string): Promise<HostRow>;
}

export interface AgentHandlers {
  enroll(options: { token: string; stateDir: string; replace: boolean }): Promise<{
    spiffeId: string;
    hostId: string;
    trustDomain: string;
    expiresAt: string;
  }>;
  /** `nsm-agent run`: serves until `signal` aborts; `ready` is called once every listener is up. */
  run(options: AgentRunOptions, signal: AbortSignal, ready: (info: AgentReadyInfo) => void): Promise<void>;
}

export interface Handlers {
  readonly controlServer: ControlServerHandlers;
  readonly agent: AgentHandlers;
}

/** The handlers, or a clear error when this CLI was built without them (tests of the bare CLI). */
export async function handlersOf(io: { readonly handlers?: () => Promise<Handlers> }): Promise<Handlers> {
  if (!io.handlers) {
    throw new AgentError(
      'INTERNAL',
      'this command needs the nsm-agent runtime, which this CLI was started without',
      {
        hint: 'run the nsm-agent binary (or src/main.ts), not the bare CLI module',
      },
    );
  }
  return io.handlers();
}
