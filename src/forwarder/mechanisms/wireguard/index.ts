export { wireguardClient } from './client.js';
export { carriesIp, endpointOf } from './common.js';
export type { WireguardOptions } from './common.js';
export { wireguardServer } from './server.js';
