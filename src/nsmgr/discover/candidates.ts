import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { ContextKey } from '../../chain/index.js';
import type { ChainContext } from '../../chain/index.js';
import { AgentError } from '../../errors/index.js';

/**
 * What discover hands to the endpoint selection after it: the service and the endpoints that may
 * serve this request, in MatchEndpoint's order. `pinned` means the request named its endpoint
 * (`network_service_endpoint_name`, e.g. a refresh), so there is exactly one and no choice to make.
 */
export interface Candidates {
  readonly networkService: NetworkService;
  readonly endpoints: readonly NetworkServiceEndpoint[];
  readonly pinned: boolean;
}

const candidatesKey = new ContextKey<Candidates>('nsmgr/discover/candidates');
const selectedKey = new ContextKey<NetworkServiceEndpoint>('nsmgr/roundrobin/selected');

export function withCandidates(ctx: ChainContext, candidates: Candidates): ChainContext {
  return ctx.with(candidatesKey, candidates);
}

/** The candidates put in the context by discover; throws CHAIN_INVALID when there is no discover above. */
export function candidatesOf(ctx: ChainContext): Candidates {
  const c = ctx.get(candidatesKey);
  if (!c) {
    throw new AgentError('CHAIN_INVALID', 'no endpoint candidates in context', {
      hint: 'put the discover element before roundrobin in the nsmgr chain',
    });
  }
  return c;
}

export function withSelectedEndpoint(ctx: ChainContext, nse: NetworkServiceEndpoint): ChainContext {
  return ctx.with(selectedKey, nse);
}

/**
 * The endpoint the rest of the chain is to reach (its `url` is where to dial), set by roundrobin on
 * Request and by discover on Close; undefined on a Close whose endpoint could not be found.
 */
export function selectedEndpointOf(ctx: ChainContext): NetworkServiceEndpoint | undefined {
  return ctx.get(selectedKey);
}
