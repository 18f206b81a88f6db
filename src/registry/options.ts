import type { TokenSigner } from '../api/token/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import type { Store } from '../store/index.js';
import type { RegistryPolicy } from './registry-policy.js';
import type { RegistryLimits } from './validate.js';

export interface RegistryServicesOptions {
  /** Where records live; several servers on one store share records, ownership and watches. */
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * Mints this server's own path-segment token with the server's SVID key. Read on every call, so
   * after an SVID renewal pass a signer that delegates to the current SVID (TokenSigner is an interface).
   */
  readonly signer: TokenSigner;
  /** Default DEFAULT_REGISTRY_POLICIES (upstream's registry server policies); ALLOW_ANY for none. */
  readonly policies?: readonly RegistryPolicy[];
  /** Upper bound of an NSE registration's life; default 1 min, as nsmgr and registry-memory. */
  readonly defaultExpirationMs?: number;
  /** Key prefix in the store; default `/nsm-agent/registry/`. */
  readonly keyPrefix?: string;
  readonly limits?: Partial<RegistryLimits>;
  /** Changes a Find watch may fall behind before it is ended with RESOURCE_EXHAUSTED; default 10,000. */
  readonly maxWatchBacklog?: number;
  /**
   * Refuse calls without a verified client SVID (UNAUTHENTICATED); default true. false only for a
   * registry on a trusted local socket without TLS.
   */
  readonly requirePeerIdentity?: boolean;
}

export const DEFAULT_EXPIRATION_MS = 60_000;
export const DEFAULT_KEY_PREFIX = '/nsm-agent/registry/';
export const DEFAULT_MAX_WATCH_BACKLOG = 10_000;
