export { coalescing } from './coalesce.js';
export { agentVersion } from './version.js';
