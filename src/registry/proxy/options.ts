import type { ClientTransportCredentials, ClientTuning } from '../../api/grpc/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import type { Clock, Random } from '../../host/index.js';
import type { Logger } from '../../log/index.js';
import type { BackoffOptions } from './backoff.js';

export interface RegistryProxyOptions {
  /** The upstream registry (the control server), `tcp://host:port`, mTLS. */
  readonly upstreamUrl: string;
  /** The agent's SVID as client credentials, expecting the upstream's SPIFFE ID. */
  readonly credentials: ClientTransportCredentials;
  /** Mints the agent's nsm-client-token for upstream calls. */
  readonly signer: TokenSigner;
  /** The upstream registry's SPIFFE ID (token audience). */
  readonly upstreamSpiffeId: string;
  /** The agent's public `tcp://` URL: what local endpoints' URLs become upstream (NSM localbypass). */
  readonly publicUrl: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** Re-subscribe backoff (full jitter, default 1 s → 10 s). */
  readonly backoff?: BackoffOptions;
  /**
   * How long a local registration stays when its local client does not refresh it (default 1 min,
   * NSM's default expiration), unless the client asked for a time itself: a crashed local endpoint
   * disappears upstream instead of being refreshed by the agent forever.
   */
  readonly localExpirationMs?: number;
  /** Deadline of each upstream unary call and of connecting (default 5 s). */
  readonly callTimeoutMs?: number;
  /** Upstream channel tuning (keepalive etc.); default the agent's client tuning. */
  readonly tuning?: Partial<ClientTuning>;
  /** Hears the round-trip time of every unary call upstream (registry round-trip on /metrics). */
  readonly onRoundTrip?: (method: string, seconds: number, ok: boolean) => void;
  /** A local watcher this many changes behind is ended (default 1000). */
  readonly maxWatchBacklog?: number;
  /**
   * After waiting for upstream to take connections again, the session (watches, listing,
   * re-registration) starts after a uniform delay below this (default 2 s): agents whose channels
   * reconnected together spread their load on the returning server (R24).
   */
  readonly reconnectSpreadMs?: number;
}

export const DEFAULT_LOCAL_EXPIRATION_MS = 60_000;
export const DEFAULT_PROXY_CALL_TIMEOUT_MS = 5_000;
export const DEFAULT_PROXY_WATCH_BACKLOG = 1_000;
export const DEFAULT_RECONNECT_SPREAD_MS = 2_000;
/**
 * Cap of grpc-js's reconnect backoff on the upstream channel (±20 % jitter): upstream back, the agent
 * connects within ~6 s, then the spread above, the session and the re-registration: well inside
 * one refresh period (40 s, R19). While upstream is down each agent tries about every 5 s.
 */
export const UPSTREAM_MAX_RECONNECT_BACKOFF_MS = 5_000;

/** Response header telling a local registrant whether upstream has its registration yet. */
export const UPSTREAM_STATUS_HEADER = 'nsm-agent-upstream';
