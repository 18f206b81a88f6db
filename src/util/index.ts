export { agentVersion } from './version.js';
