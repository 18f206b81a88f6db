// The agent's local registry proxy (issue 5): local registrations forwarded to one upstream registry.
export { RegistryProxy } from './registry-proxy.js';
export type { RegistryProxyMetrics, UpstreamState } from './proxy-state.js';
export {
  DEFAULT_LOCAL_EXPIRATION_MS,
  DEFAULT_PROXY_CALL_TIMEOUT_MS,
  DEFAULT_PROXY_WATCH_BACKLOG,
  UPSTREAM_STATUS_HEADER,
} from './options.js';
export type { RegistryProxyOptions } from './options.js';
export { DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
