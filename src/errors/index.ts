export { AgentError, describe } from './agent-error.js';
export type { AgentErrorOptions, ErrorCode } from './agent-error.js';
