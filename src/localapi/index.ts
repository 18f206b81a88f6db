export { handlersOf } from './handlers.js';
export type {
  AgentHandlers,
  ControlServerHandlers,
  Handlers,
  HostRow,
  ServerRunOptions,
  TokenRow,
} from './handlers.js';
