import { NetworkServiceEndpointSchema, NetworkServiceSchema } from '../api/index.js';
import type { ServiceRegistration } from '../api/grpc/index.js';
import { AgentError } from '../errors/index.js';
import { nsRegistryServer } from './ns-server.js';
import { nseRegistryServer } from './nse-server.js';
import { DEFAULT_EXPIRATION_MS, DEFAULT_KEY_PREFIX } from './options.js';
import type { RegistryServicesOptions } from './options.js';
import { Ownership } from './ownership.js';
import { RecordSet } from './record-set.js';
import { DEFAULT_REGISTRY_POLICIES } from './registry-policy.js';
import { DEFAULT_REGISTRY_LIMITS } from './validate.js';

/**
 * The NSM registry (NS and NSE) over a Store, ready for startServer. Holds no timers or
 * background work of its own (expiry is the store's leases; each watch lives with its call), so
 * there is nothing to close: closing the gRPC server and the store is enough.
 */
export function createRegistryServices(options: RegistryServicesOptions): ServiceRegistration[] {
  const defaultExpirationMs = options.defaultExpirationMs ?? DEFAULT_EXPIRATION_MS;
  if (!Number.isFinite(defaultExpirationMs) || defaultExpirationMs <= 0) {
    throw new AgentError(
      'CONFIG_INVALID',
      `registry default expiration must be a positive number of ms, got ${defaultExpirationMs}`,
    );
  }
  const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const log = options.log.child({ subsystem: 'registry' });
  const limits = { ...DEFAULT_REGISTRY_LIMITS, ...options.limits };
  const common = {
    signer: options.signer,
    policies: options.policies ?? DEFAULT_REGISTRY_POLICIES,
    now: () => options.clock.now(),
    log,
    limits,
  };
  return [
    nsRegistryServer({
      ...common,
      records: new RecordSet(options.store, NetworkServiceSchema, `${prefix}ns/`, log),
      ownership: new Ownership(options.store, `${prefix}owner/ns/`),
    }),
    nseRegistryServer({
      ...common,
      store: options.store,
      clock: options.clock,
      defaultExpirationMs,
      records: new RecordSet(options.store, NetworkServiceEndpointSchema, `${prefix}nse/`, log),
      ownership: new Ownership(options.store, `${prefix}owner/nse/`),
    }),
  ];
}
