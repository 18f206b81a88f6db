/**
 * What the agent daemon offers the CLI over its local API (`unix:///run/nsm-agent/api.sock`):
 * the daemon implements it, the local API serves it (HTTP + JSON on the unix socket, as Tailscale's
 * LocalAPI does), and the CLI calls it through the local API client. Shapes only; plain JSON values.
 */
import type { Logger } from '../log/index.js';

/** `nsm-agent connect <service> [--netns N] [--label k=v]`. */
export interface ConnectRequest {
  readonly service: string;
  /** A name under /run/netns or an absolute netns path; absent: the host's own netns. */
  readonly netns?: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** `nsm-agent disconnect <service> [--netns N]`. */
export interface DisconnectRequest {
  readonly service: string;
  readonly netns?: string;
}

/** `nsm-agent expose <service> [--cidr C] [--label k=v] [--allow pattern]`. */
export interface ExposeRequest {
  readonly service: string;
  readonly cidr?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** SPIFFE ID patterns allowed to connect; absent or empty: every member of the mesh. */
  readonly allow?: readonly string[];
}

/** `nsm-agent unexpose <service>`. */
export interface UnexposeRequest {
  readonly service: string;
}

/** Where a connect or expose comes from: the config file (declarative) or the CLI (kept in the state dir). */
export type SpecSource = 'config' | 'cli';

/**
 * A connection's state as users see it:
 *  - `connecting`: first Request in progress (or retrying after a failure, see lastError);
 *  - `up`: established and refreshed;
 *  - `healing`: the remote agent or the data plane was lost; re-requesting;
 *  - `failed`: gave up for now (lastError says why); retried in the background.
 */
export type ConnectionState = 'connecting' | 'up' | 'healing' | 'failed';

export interface ConnectionRow {
  /** The client's connection id (stable across agent restarts). */
  readonly id: string;
  readonly service: string;
  readonly netns?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly source: SpecSource;
  readonly state: ConnectionState;
  /** The endpoint serving it (NSE name) and the agent it runs on (URL). */
  readonly endpoint?: string;
  readonly remoteUrl?: string;
  /** This side's addresses (CIDR form, e.g. 169.254.0.2/32). */
  readonly localAddresses: readonly string[];
  /** The service's stable addresses (what the workload connects to). */
  readonly serviceAddresses: readonly string[];
  /** `<service>.nsm`, resolvable where the agent manages a hosts file. */
  readonly dnsName?: string;
  /** The interface the workload uses: the WireGuard device (host) or the veth end in its netns. */
  readonly interface?: string;
  /** Seconds since the last WireGuard handshake with the remote peer; absent: none yet or local. */
  readonly handshakeAgeSeconds?: number;
  readonly establishedAt?: string;
  readonly refreshedAt?: string;
  readonly heals: number;
  readonly lastError?: string;
}

export interface ExposeRow {
  readonly service: string;
  readonly cidr: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly allow: readonly string[];
  readonly source: SpecSource;
  /** The endpoint name registered for it (`<agent>-<service>`). */
  readonly endpoint: string;
  /** The stable service address consumers reach (CIDR form). */
  readonly serviceAddress: string;
  readonly dnsName: string;
  /** Whether the control server has the registration: `registered`, or `queued` while it is unreachable. */
  readonly registration: 'registered' | 'queued';
  /** Connections from consumers currently served. */
  readonly connections: number;
}

export interface StatusReport {
  readonly agent: {
    readonly name: string;
    readonly version: string;
    readonly pid: number;
    readonly startedAt: string;
    /** Every listener bound, identity loaded, data plane adopted. */
    readonly ready: boolean;
    readonly listen: {
      readonly nsm: string;
      readonly remote: string;
      readonly api: string;
      readonly metrics: string;
    };
    /** The URL remote agents dial (advertised in the registry). */
    readonly publicUrl: string;
  };
  readonly identity: {
    readonly spiffeId: string;
    readonly trustDomain: string;
    readonly expiresAt: string;
    readonly secondsToExpiry: number;
    readonly nextRenewalAt?: string;
  };
  readonly server: {
    readonly url: string;
    /** The registry session: `up`, `connecting` (retrying with backoff) or `closed`. */
    readonly state: 'up' | 'connecting' | 'closed' | 'idle';
    readonly since?: string;
    readonly lastError?: string;
  };
  readonly dataplane: {
    readonly device: string;
    readonly backend: string;
    readonly listenPort: number;
    readonly publicKey: string;
  };
  readonly connections: readonly ConnectionRow[];
  readonly exposes: readonly ExposeRow[];
  /** Connections this agent serves for other agents' clients (the endpoint side). */
  readonly served: number;
}

export interface ServiceEndpointRow {
  readonly name: string;
  readonly url: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly expiresAt?: string;
}

export interface ServiceRow {
  readonly name: string;
  readonly payload: string;
  readonly endpoints: readonly ServiceEndpointRow[];
}

export interface ServicesReport {
  /** `cache`: answered from the agent's watch-fed cache (control server unreachable). */
  readonly source: 'registry' | 'cache';
  readonly services: readonly ServiceRow[];
}

/**
 * The daemon side. Every method rejects with an AgentError (code, message, hint) that the local API
 * carries to the CLI unchanged. `connect` resolves once the connection is up (or rejects with why
 * it is not: service not found, PermissionDenied, control server unreachable...); a connect that
 * failed is not kept. `signal` is the CLI's request going away.
 */
export interface AgentControl {
  status(): Promise<StatusReport>;
  connect(request: ConnectRequest, signal: AbortSignal): Promise<ConnectionRow>;
  disconnect(request: DisconnectRequest, signal: AbortSignal): Promise<ConnectionRow>;
  expose(request: ExposeRequest, signal: AbortSignal): Promise<ExposeRow>;
  unexpose(request: UnexposeRequest, signal: AbortSignal): Promise<ExposeRow>;
  services(signal: AbortSignal): Promise<ServicesReport>;
}

/** `nsm-agent run` options (each overrides the config file). */
export interface AgentRunOptions {
  readonly config: string;
  readonly stateDir?: string;
  readonly runDir?: string;
  readonly listenNsm?: string;
  readonly listenRemote?: string;
  readonly listenApi?: string;
  readonly listenMetrics?: string;
  /** The URL advertised to remote agents (default: listenRemote with the host's first non-loopback IPv4). */
  readonly publicUrl?: string;
  readonly wireguardPort?: number;
  readonly wireguardInterface?: string;
  /** Where `<service>.nsm` names go (default /etc/hosts; `none`: nowhere). */
  readonly hostsFile?: string;
  readonly logLevel?: string;
}

export interface AgentReadyInfo {
  readonly spiffeId: string;
  readonly publicUrl: string;
  readonly api: string;
  readonly nsm: string;
  readonly metrics: string;
  /** The daemon's logger, for what the command does to the process once the agent is ready. */
  readonly log?: Logger;
}
