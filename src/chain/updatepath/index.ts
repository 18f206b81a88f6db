export { updatePathClient } from './client.js';
export { restorePath, updatePath } from './common.js';
export { updatePathServer } from './server.js';
