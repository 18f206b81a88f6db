import type { NetworkService, NetworkServiceEndpoint } from '../api/index.js';

/** What a lookup call gets: it stops when the request it serves is cancelled. */
export interface LookupOptions {
  readonly signal: AbortSignal;
}

/** A NetworkService Find (watch=false) query template: name exact, payload exact if set. */
export interface NetworkServiceQuery {
  readonly name: string;
  readonly payload?: string;
}

/**
 * A NetworkServiceEndpoint Find (watch=false) query template: `name` exact if set; every one of
 * `networkServiceNames` offered by the endpoint.
 */
export interface EndpointQuery {
  readonly name?: string;
  readonly networkServiceNames?: readonly string[];
}

/**
 * The part of the registry the nsmgr's discover element needs: one-shot Finds. nsmgr may not import
 * the registry layer; the daemon adapts its registry client (local proxy or remote registry) to this.
 * Lookups reject with an AgentError (UNAVAILABLE when the registry cannot be reached); an empty list
 * means nothing matched.
 */
export interface RegistryLookup {
  findNetworkServices(query: NetworkServiceQuery, options: LookupOptions): Promise<NetworkService[]>;
  findEndpoints(query: EndpointQuery, options: LookupOptions): Promise<NetworkServiceEndpoint[]>;
}
