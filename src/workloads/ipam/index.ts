export { ServiceIpam } from './service-ipam.js';
export type { ServiceIpamOptions } from './service-ipam.js';
export { ipamServer } from './server.js';
