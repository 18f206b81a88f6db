/**
 * The nsmgr's own chain elements: discover (find the service and the endpoints that may serve a
 * request) and roundrobin (pick one, fall through to the next on failure), with NSM's MatchEndpoint.
 * The registry is reached through the narrow RegistryLookup port that the daemon adapts.
 */
export {
  candidatesOf,
  discoverServer,
  selectedEndpointOf,
  withCandidates,
  withSelectedEndpoint,
} from './discover/index.js';
export type { Candidates, DiscoverOptions } from './discover/index.js';
export { GO_NO_VALUE, isSubset, matchEndpoint, renderSelectorValue } from './matchutils/index.js';
export type { Labels } from './matchutils/index.js';
export type { EndpointQuery, LookupOptions, NetworkServiceQuery, RegistryLookup } from './registry-lookup.js';
export { roundRobinServer } from './roundrobin/index.js';
