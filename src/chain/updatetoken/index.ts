export { updateTokenClient } from './client.js';
export type { UpdateTokenClientOptions, UpdateTokenServerOptions } from './options.js';
export { updateTokenServer } from './server.js';
