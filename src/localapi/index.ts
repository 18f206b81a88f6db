export { handlersOf } from './handlers.js';
export type {
  AgentHandlers,
  ControlServerHandlers,
  Handlers,
  HostRow,
  ServerRunOptions,
  TokenRow,
} from './handlers.js';
export type {
  AgentControl,
  AgentReadyInfo,
  AgentRunOptions,
  ConnectRequest,
  ConnectionRow,
  ConnectionState,
  DisconnectRequest,
  ExposeRequest,
  ExposeRow,
  ServiceEndpointRow,
  ServiceRow,
  ServicesReport,
  SpecSource,
  StatusReport,
  UnexposeRequest,
} from './agent-control.js';
export { localApiRoutes, maxRequestBodyBytes } from './api-routes.js';
export type { ErrorBody, LocalApiRoute } from './api-routes.js';
export { LocalApiClient } from './local-api-client.js';
export type { LocalApiCallOptions } from './local-api-client.js';
export { startLocalApi } from './local-api-server.js';
export type { LocalApi, LocalApiOptions } from './local-api-server.js';
export { defaultLocalApiUrl, localApiSocketPath } from './local-api-url.js';
