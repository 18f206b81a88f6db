export { candidatesOf, selectedEndpointOf, withCandidates, withSelectedEndpoint } from './candidates.js';
export type { Candidates } from './candidates.js';
export { discoverServer } from './server.js';
export type { DiscoverOptions } from './server.js';
