import { create, NetworkServiceEndpointSchema, NetworkServiceSchema } from '../../api/index.js';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import type { EndpointQuery, NetworkServiceQuery, RegistryLookup } from '../../nsmgr/index.js';
import type { RegistryProxy } from '../../registry/proxy/index.js';

/**
 * discover's view of the registry: the local proxy's watch-fed cache (no round trip per request).
 *
 * Picking an endpoint for a NEW connection needs the control server: while it is unreachable the
 * cache may be stale in ways we cannot see (endpoints gone, policies changed), so such a request
 * fails with a message that says so (DESIGN §9: existing connections keep passing traffic; new
 * connections resume when it returns). Requests that name their endpoint — refreshes and heals of
 * existing connections, and remote agents reaching an endpoint of this host — are answered from the
 * cache, so nothing that runs is cut by a control-server outage.
 */
export function proxyLookup(proxy: RegistryProxy, serverUrl: string): RegistryLookup {
  return {
    findNetworkServices(query: NetworkServiceQuery): Promise<NetworkService[]> {
      return Promise.resolve(
        proxy.findServices(
          create(NetworkServiceSchema, {
            name: query.name,
            ...(query.payload === undefined ? {} : { payload: query.payload }),
          }),
        ),
      );
    },
    findEndpoints(query: EndpointQuery): Promise<NetworkServiceEndpoint[]> {
      if (query.name === undefined) {
        const state = proxy.state;
        if (state.kind !== 'up') {
          const since = state.kind === 'down' ? ` since ${new Date(state.sinceMs).toISOString()}` : '';
          const why = state.kind === 'down' ? ` (${state.error})` : '';
          return Promise.reject(
            new AgentError(
              'UNAVAILABLE',
              `the control server ${serverUrl} is unreachable${since}${why}: new connections need it to pick an endpoint`,
              {
                hint: 'existing connections keep working; retry when the control server is back (nsm-agent status shows it)',
                details: { controlServer: serverUrl },
              },
            ),
          );
        }
      }
      return Promise.resolve(
        proxy.findEndpoints(
          create(NetworkServiceEndpointSchema, {
            ...(query.name === undefined ? {} : { name: query.name }),
            ...(query.networkServiceNames === undefined
              ? {}
              : { networkServiceNames: [...query.networkServiceNames] }),
          }),
        ),
      );
    },
  };
}
