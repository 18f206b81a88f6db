import { NetworkServiceEndpointSchema, NetworkServiceSchema } from '../api/index.js';
import type { ServiceRegistration } from '../api/grpc/index.js';
import { AgentError } from '../errors/index.js';
import { nsRegistryServer } from './ns-server.js';
import { nseRegistryServer } from './nse-server.js';
import { DEFAULT_EXPIRATION_MS, DEFAULT_KEY_PREFIX, DEFAULT_MAX_WATCH_BACKLOG } from './options.js';
import type { RegistryServicesOptions } from './options.js';
import { Ownership } from './ownership.js';
import { RecordSet } from './record-set.js';
import { RecordView } from './record-view.js';
import { isNseRenewal } from './renewals.js';
import { DEFAULT_REGISTRY_POLICIES } from './registry-policy.js';
import { DEFAULT_REGISTRY_LIMITS } from './validate.js';

/** The registry's gRPC services and their lifetime. */
export interface RegistryServices {
  /** `registry.NetworkServiceRegistry` and `registry.NetworkServiceEndpointRegistry`, for startServer. */
  readonly services: readonly ServiceRegistration[];
  /**
   * Stops the in-memory views' store watches (open Find watches end). Call after the gRPC server
   * closed and before the store closes. Idempotent.
   */
  close(): void;
}

/**
 * The NSM registry (NS and NSE) over a Store. Nothing starts here: each service's view of the
 * store lists and watches on its first use; expiry is the store's leases.
 */
export function createRegistryServices(options: RegistryServicesOptions): RegistryServices {
  const defaultExpirationMs = options.defaultExpirationMs ?? DEFAULT_EXPIRATION_MS;
  if (!Number.isFinite(defaultExpirationMs) || defaultExpirationMs <= 0) {
    throw new AgentError(
      'CONFIG_INVALID',
      `registry default expiration must be a positive number of ms, got ${defaultExpirationMs}`,
    );
  }
  const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const log = options.log.child({ subsystem: 'registry' });
  const common = {
    signer: options.signer,
    policies: options.policies ?? DEFAULT_REGISTRY_POLICIES,
    now: () => options.clock.now(),
    log,
    limits: { ...DEFAULT_REGISTRY_LIMITS, ...options.limits },
    maxWatchBacklog: options.maxWatchBacklog ?? DEFAULT_MAX_WATCH_BACKLOG,
    requirePeerIdentity: options.requirePeerIdentity ?? true,
  };
  const nsRecords = new RecordSet(options.store, NetworkServiceSchema, `${prefix}ns/`, log);
  const nseRecords = new RecordSet(options.store, NetworkServiceEndpointSchema, `${prefix}nse/`, log);
  const nsView = new RecordView(nsRecords, options.clock, log.child({ view: 'ns' }));
  const nseView = new RecordView(nseRecords, options.clock, log.child({ view: 'nse' }), {
    isRenewal: isNseRenewal,
  });
  return {
    services: [
      nsRegistryServer({
        ...common,
        records: nsRecords,
        view: nsView,
        ownership: new Ownership(options.store, `${prefix}owner/ns/`),
      }),
      nseRegistryServer({
        ...common,
        store: options.store,
        clock: options.clock,
        defaultExpirationMs,
        records: nseRecords,
        view: nseView,
        ownership: new Ownership(options.store, `${prefix}owner/nse/`),
      }),
    ],
    close() {
      nsView.close();
      nseView.close();
    },
  };
}
