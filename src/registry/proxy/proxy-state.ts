/** Where the proxy stands with its upstream registry. */
export type UpstreamState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'connecting'; readonly attempt: number }
  | { readonly kind: 'up'; readonly sinceMs: number }
  | {
      readonly kind: 'down';
      readonly sinceMs: number;
      readonly attempt: number;
      /** The jittered delay before the next attempt. */
      readonly retryInMs: number;
      readonly error: string;
    }
  | { readonly kind: 'closed' };

/** Counters for /metrics; a fresh plain object per call. */
export interface RegistryProxyMetrics {
  readonly upstreamState: UpstreamState['kind'];
  /** Times the upstream session came up (first connect included). */
  readonly upstreamConnects: number;
  readonly upstreamLosses: number;
  readonly localEndpoints: number;
  readonly localServices: number;
  /** Local registrations upstream does not have yet (queued while it is unreachable). */
  readonly pendingUpstream: number;
  /** Local Register calls forwarded and accepted upstream. */
  readonly registrations: number;
  /** Local Register calls accepted while upstream was unreachable. */
  readonly queued: number;
  /** Upstream refreshes the proxy made on its own (2/3 of the upstream expiration). */
  readonly refreshes: number;
  readonly refreshFailures: number;
  /** Registrations sent again after the upstream session came back. */
  readonly restored: number;
  /** Local registrations dropped because their local client stopped refreshing them. */
  readonly localExpired: number;
  readonly cachedServices: number;
  readonly cachedEndpoints: number;
}

/** The counters of RegistryProxyMetrics the proxy increments. */
export type Counter =
  | 'upstreamConnects'
  | 'upstreamLosses'
  | 'registrations'
  | 'queued'
  | 'refreshes'
  | 'refreshFailures'
  | 'restored'
  | 'localExpired';
