import type { MessageInitShape, NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { create, NetworkServiceEndpointSchema, NetworkServiceSchema } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import type {
  EndpointQuery,
  LookupOptions,
  NetworkServiceQuery,
  RegistryLookup,
} from '../registry-lookup.js';

/**
 * An in-memory RegistryLookup for tests, with the registry's Find semantics for the queries discover
 * sends (nsm-api.md §4.9: names exact, payload exact if set, queried service names a subset of the
 * endpoint's). It records the queries, and `failWith` makes every lookup reject (a registry that is
 * down). Only for tests.
 */
export class FakeRegistryLookup implements RegistryLookup {
  readonly services: NetworkService[] = [];
  readonly endpoints: NetworkServiceEndpoint[] = [];
  readonly queries: (NetworkServiceQuery | EndpointQuery)[] = [];
  failWith: Error | undefined;

  addService(ns: MessageInitShape<typeof NetworkServiceSchema>): NetworkService {
    const m = create(NetworkServiceSchema, ns);
    this.services.push(m);
    return m;
  }

  addEndpoint(nse: MessageInitShape<typeof NetworkServiceEndpointSchema>): NetworkServiceEndpoint {
    const m = create(NetworkServiceEndpointSchema, nse);
    this.endpoints.push(m);
    return m;
  }

  findNetworkServices(query: NetworkServiceQuery, options: LookupOptions): Promise<NetworkService[]> {
    this.queries.push(query);
    return this.#answer(options, () =>
      this.services.filter(
        (s) => s.name === query.name && (query.payload === undefined || s.payload === query.payload),
      ),
    );
  }

  findEndpoints(query: EndpointQuery, options: LookupOptions): Promise<NetworkServiceEndpoint[]> {
    this.queries.push(query);
    return this.#answer(options, () =>
      this.endpoints.filter(
        (e) =>
          (query.name === undefined || e.name === query.name) &&
          (query.networkServiceNames ?? []).every((n) => e.networkServiceNames.includes(n)),
      ),
    );
  }

  #answer<T>(options: LookupOptions, answer: () => T): Promise<T> {
    if (options.signal.aborted) return Promise.reject(options.signal.reason as Error);
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(answer());
  }
}

/** The error a fake registry that is down rejects with. */
export function registryDown(): AgentError {
  return new AgentError('UNAVAILABLE', 'registry is not reachable (fake)');
}
