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
