import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import type { ChainContext, ChainElement } from '../../chain/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { matchEndpoint } from '../matchutils/index.js';
import type { RegistryLookup } from '../registry-lookup.js';
import { withCandidates, withSelectedEndpoint } from './candidates.js';

export interface DiscoverOptions {
  /** The registry as seen through this nsmgr (local proxy or the remote registry). */
  readonly lookup: RegistryLookup;
}

/**
 * discover server (nsm-api.md §4.2 step 4, §4.8): finds the requested NetworkService, then either the
 * endpoint the request names (`network_service_endpoint_name`, a refresh) or every live endpoint
 * offering the service filtered by MatchEndpoint, and puts them in the context for roundrobin.
 * Endpoints whose `expiration_time` has passed are dropped (the registry may not have removed them yet).
 * On Close it looks up the named endpoint so the rest of the chain knows where to go, but Close
 * always passes through: local cleanup below must run even when the registry is gone.
 */
export function discoverServer(options: DiscoverOptions): ChainElement {
  const { lookup } = options;
  return {
    name: 'discover',
    async request(ctx, request, next) {
      const conn = request.connection;
      const serviceName = conn?.networkService ?? '';
      if (!conn || serviceName === '') {
        throw new AgentError('INVALID_ARGUMENT', 'the request names no network service', {
          hint: 'set connection.network_service to the service to connect to',
        });
      }
      const ns = await findService(ctx, lookup, serviceName, conn.payload);
      const endpointName = conn.networkServiceEndpointName;
      if (endpointName !== '') {
        const nse = await findEndpoint(ctx, lookup, endpointName);
        if (!nse) {
          throw new AgentError(
            'NOT_FOUND',
            `network service endpoint ${endpointName} of network service ${serviceName} is not found (not registered or expired)`,
            {
              hint: 'wait for the endpoint to register again, or request without network_service_endpoint_name (reselect) to pick another endpoint',
            },
          );
        }
        ctx.log.debug({ networkService: serviceName, endpoint: nse.name }, 'discover: requested endpoint');
        return next.request(
          withCandidates(ctx, { networkService: ns, endpoints: [nse], pinned: true }),
          request,
        );
      }
      const offered = await lookupOrFail(
        ctx,
        () => lookup.findEndpoints({ networkServiceNames: [ns.name] }, { signal: ctx.signal }),
        `the endpoints of network service ${serviceName}`,
      );
      const live = offered.filter((nse) => nse.networkServiceNames.includes(ns.name) && !expired(ctx, nse));
      const candidates = matchEndpoint(conn.labels, ns, live);
      if (candidates.length === 0) {
        throw new AgentError(
          'NOT_FOUND',
          `network service endpoint candidates not found for network service ${serviceName}`,
          {
            hint:
              live.length === 0
                ? 'no live endpoint offers this service: start one (or check that it keeps its registration refreshed)'
                : `none of the ${live.length} live endpoints is selected by the service's matches for request labels ${JSON.stringify(conn.labels)}: check the endpoints' network_service_labels and the service's matches`,
            details: { networkService: serviceName, liveEndpoints: live.length },
          },
        );
      }
      ctx.log.debug(
        { networkService: serviceName, candidates: candidates.map((e) => e.name) },
        'discover: endpoint candidates',
      );
      return next.request(
        withCandidates(ctx, { networkService: ns, endpoints: candidates, pinned: false }),
        request,
      );
    },
    async close(ctx, connection, next) {
      const name = connection.networkServiceEndpointName;
      let nextCtx = ctx;
      if (name !== '') {
        try {
          const nse = await findEndpoint(ctx, lookup, name);
          if (nse) nextCtx = withSelectedEndpoint(ctx, nse);
          else
            ctx.log.warn(
              { endpoint: name },
              'discover: endpoint of the closed connection is not registered; closing locally',
            );
        } catch (e: unknown) {
          ctx.log.warn(
            { endpoint: name, err: describe(e) },
            'discover: endpoint lookup failed; closing locally',
          );
        }
      }
      await next.close(nextCtx, connection);
    },
  };
}

async function findService(
  ctx: ChainContext,
  lookup: RegistryLookup,
  name: string,
  payload: string,
): Promise<NetworkService> {
  const query = payload === '' ? { name } : { name, payload };
  const found = await lookupOrFail(
    ctx,
    () => lookup.findNetworkServices(query, { signal: ctx.signal }),
    `network service ${name}`,
  );
  const ns = found.find((s) => s.name === name && (payload === '' || s.payload === payload));
  if (!ns) {
    const what = payload === '' ? name : `${name} with payload ${payload}`;
    throw new AgentError('NOT_FOUND', `network service ${what} is not found`, {
      hint: 'register the network service in the registry (e.g. the endpoint registers it when it starts), or check its name',
      details: { networkService: name },
    });
  }
  return ns;
}

async function findEndpoint(
  ctx: ChainContext,
  lookup: RegistryLookup,
  name: string,
): Promise<NetworkServiceEndpoint | undefined> {
  const found = await lookupOrFail(
    ctx,
    () => lookup.findEndpoints({ name }, { signal: ctx.signal }),
    `network service endpoint ${name}`,
  );
  return found.find((nse) => nse.name === name && !expired(ctx, nse));
}

async function lookupOrFail<T>(ctx: ChainContext, find: () => Promise<T>, what: string): Promise<T> {
  try {
    return await find();
  } catch (e: unknown) {
    if (ctx.signal.aborted) throw e;
    throw AgentError.wrap(
      e,
      'UNAVAILABLE',
      `could not look up ${what} in the registry`,
      'check that the registry is reachable and retry',
    );
  }
}

function expired(ctx: ChainContext, nse: NetworkServiceEndpoint): boolean {
  const t = nse.expirationTime;
  if (!t) return false;
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) <= ctx.clock.now();
}
