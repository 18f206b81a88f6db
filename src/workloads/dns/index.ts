export { serviceDnsName, serviceDomain } from './dns-name.js';
export { dnsContextServer } from './server.js';
export type { DnsContextServerOptions } from './server.js';
