import type { ConnectionEvent, MonitorScopeSelector, NetworkServiceRequest } from '../../api/index.js';
import type { ChainContext } from '../core/context.js';

/** What heal reports, for metrics and status. */
export interface HealEvent {
  /**
   * `lost`: the monitor stream of the connection's remote broke (once per outage and connection);
   * `healed`: a re-request heal started succeeded; `heal-failed`: one did not (it is retried).
   */
  readonly kind: 'lost' | 'healed' | 'heal-failed';
  /** The connection id as heal sees it (this hop's id). */
  readonly connectionId: string;
  readonly url: string;
  readonly error?: unknown;
}

export interface HealBackoff {
  /** Ceiling of the first delay (full jitter: a delay is uniform in [0, ceiling)). Default 100 ms. */
  readonly initialMs: number;
  /** Largest ceiling. Default 1 s: a healed connection waits at most this long once the remote is back. */
  readonly maxMs: number;
}

export interface HealOptions {
  /** This hop's path segment name: the remote's monitor is asked for connections through it. */
  readonly selfName: string;
  /**
   * The remote URL the rest of the chain will call for this request (set by the elements before
   * heal); undefined when the connection is not remote — heal then leaves it alone.
   */
  remoteOf(ctx: ChainContext, request: NetworkServiceRequest): string | undefined;
  /**
   * Opens `connection.MonitorConnection/MonitorConnections` on `url` with `selector`; aborting
   * `signal` cancels it. Called once per remote URL however many connections go there, and again
   * (with backoff) after the stream fails or ends.
   */
  subscribe(url: string, selector: MonitorScopeSelector, signal: AbortSignal): AsyncIterable<ConnectionEvent>;
  /** Retry delays for resubscribing and for failed re-requests (default 100 ms … 1 s). */
  readonly backoff?: HealBackoff;
  /** Failed re-requests in a row after which heal asks for another endpoint (reselect). Default 3. */
  readonly reselectAfterFailures?: number;
  /** Heal re-requests running at once per remote URL; the rest wait their turn. Default 32. */
  readonly maxConcurrentHeals?: number;
  onEvent?(event: HealEvent): void;
}
