export { timeoutServer } from './server.js';
