export { AgentMetrics, connectionStates, latencyBuckets } from './agent-metrics.js';
export type {
  AgentMetricsOptions,
  CollectFn,
  CollectSink,
  ConnectionState,
  HealEvent,
  RegistryProxyCounters,
} from './agent-metrics.js';
export { formatHostPort, parseListenAddress } from './listen-address.js';
export type { ListenAddress } from './listen-address.js';
export { startMetricsServer } from './metrics-server.js';
export type { HealthVerdict, MetricsServer, MetricsServerOptions } from './metrics-server.js';
