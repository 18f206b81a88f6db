// The NSM registry served by `nsm-agent server` (issue B §1): NS and NSE registries over a Store.
export { createRegistryServices } from './create-registry-services.js';
export type { RegistryServices } from './create-registry-services.js';
export { DEFAULT_EXPIRATION_MS, DEFAULT_KEY_PREFIX, DEFAULT_MAX_WATCH_BACKLOG } from './options.js';
export type { RegistryServicesOptions } from './options.js';
export {
  ALLOW_ANY,
  DEFAULT_REGISTRY_POLICIES,
  clientAllowed,
  evaluatePolicies,
  prevTokenSigned,
  tokensChained,
  tokensExpired,
  tokensValid,
} from './registry-policy.js';
export type { RegistryPolicy, RegistryPolicyInput } from './registry-policy.js';
export { matchNetworkService, matchNetworkServiceEndpoint } from './match.js';
export {
  PATH_METADATA_KEY,
  formatRegistryPath,
  parseRegistryPath,
  updatePathIds,
  updateRegistryPath,
} from './registry-path.js';
export type { RegistryPath, RegistryPathSegment } from './registry-path.js';
export { DEFAULT_REGISTRY_LIMITS, PAYLOADS, checkEndpointUrl } from './validate.js';
export type { RegistryLimits } from './validate.js';
export {
  DEFAULT_BACKOFF,
  DEFAULT_LOCAL_EXPIRATION_MS,
  DEFAULT_PROXY_CALL_TIMEOUT_MS,
  DEFAULT_PROXY_WATCH_BACKLOG,
  RegistryProxy,
  UPSTREAM_STATUS_HEADER,
  fullJitterDelay,
} from './proxy/index.js';
export type {
  BackoffOptions,
  RegistryProxyMetrics,
  RegistryProxyOptions,
  UpstreamState,
} from './proxy/index.js';
