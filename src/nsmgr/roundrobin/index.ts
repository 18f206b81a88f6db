export { roundRobinServer } from './server.js';
