import type { Connection, NetworkServiceEndpoint } from '../../api/index.js';
import { clone, NetworkServiceRequestSchema, State } from '../../api/index.js';
import type { ChainElement } from '../../chain/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { candidatesOf, withSelectedEndpoint } from '../discover/index.js';

/**
 * roundrobin server (endpoint selection, nsm-api.md §4.8): picks among discover's candidates with a
 * counter per network service (weights are ignored, as in NSM), sets `network_service_endpoint_name`
 * and passes the chosen endpoint on in the context. When the rest of the chain fails for one
 * candidate it tries the next, each once; when all fail, the error says what was tried.
 *
 * Each try gets its own copy of the request, so what a failed try did to it (path, mechanism) does
 * not leak into the next. With `state == RESELECT_REQUESTED` the endpoints the connection used before
 * (their names in the path after this hop) go last: the client asked for a different one, but one
 * that is still the only choice is better than none.
 */
export function roundRobinServer(): ChainElement {
  const counters = new Map<string, number>();
  return {
    name: 'roundrobin',
    order: { requires: ['discover'] },
    async request(ctx, request, next) {
      const { networkService, endpoints, pinned } = candidatesOf(ctx);
      if (endpoints.length === 0) {
        throw new AgentError(
          'NOT_FOUND',
          `no endpoint candidates for network service ${networkService.name}`,
          {
            hint: 'discover passes on only a non-empty candidate list; check the order of the nsmgr chain',
          },
        );
      }
      let order: NetworkServiceEndpoint[];
      if (pinned) {
        order = [...endpoints];
      } else {
        const n = counters.get(networkService.name) ?? 0;
        counters.set(networkService.name, n + 1);
        const start = n % endpoints.length;
        order = [...endpoints.slice(start), ...endpoints.slice(0, start)];
        if (request.connection?.state === State.RESELECT_REQUESTED) {
          const used = usedBefore(request.connection);
          order = [...order.filter((e) => !used.has(e.name)), ...order.filter((e) => used.has(e.name))];
        }
      }
      const tried: string[] = [];
      const seen = new Set<string>();
      let last: unknown;
      for (const nse of order) {
        // An endpoint selected by two routes is listed twice: it gets one try.
        if (seen.has(nse.name)) continue;
        seen.add(nse.name);
        ctx.signal.throwIfAborted();
        const attempt = clone(NetworkServiceRequestSchema, request);
        if (attempt.connection) attempt.connection.networkServiceEndpointName = nse.name;
        try {
          return await next.request(withSelectedEndpoint(ctx, nse), attempt);
        } catch (e: unknown) {
          last = e;
          tried.push(`${nse.name} (${describe(e)})`);
          ctx.log.warn(
            { networkService: networkService.name, endpoint: nse.name, err: describe(e) },
            'roundrobin: endpoint failed; trying the next candidate',
          );
        }
      }
      if (tried.length === 1) throw last;
      throw new AgentError(
        AgentError.is(last) ? last.code : 'UNAVAILABLE',
        `all ${tried.length} endpoints of network service ${networkService.name} failed: ${tried.join('; ')}`,
        {
          cause: last,
          hint: 'check that the endpoints are running and reachable; the request can be retried',
          details: { networkService: networkService.name, tried: tried.length },
        },
      );
    },
    async close(ctx, connection, next) {
      await next.close(ctx, connection);
    },
  };
}

/** Names in the path after this hop: the endpoint (or next hop) this connection went to before. */
function usedBefore(conn: Connection): Set<string> {
  const path = conn.path;
  if (!path) return new Set();
  return new Set(path.pathSegments.slice(path.index + 1).map((s) => s.name));
}
