import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { isSubset } from './is-subset.js';
import type { Labels } from './is-subset.js';

/**
 * NSM's `MatchEndpoint` (nsm-api.md §4.8): which of `endpoints` (already the NSEs registered for
 * `ns`) may serve a request with `requestLabels`.
 *
 * - No `matches` on the service: every endpoint.
 * - Otherwise the first match whose `source_selector` is a subset of the request labels decides:
 *   the candidates are, route by route, the endpoints whose labels for this service
 *   (`network_service_labels[ns.name].labels`) contain the route's `destination_selector` (an
 *   endpoint selected by two routes is listed twice, as in NSM, which gives it two turns in the round
 *   robin). A `fallthrough` match with no candidates passes to the next match; a match with
 *   `metadata` but no `routes` and no candidates gives every endpoint.
 * - No match applies: no endpoint.
 *
 * Selector values may be `{{.label}}` templates over the request labels; other template syntax
 * throws INVALID_ARGUMENT (see selector-template.ts).
 */
export function matchEndpoint(
  requestLabels: Labels,
  ns: NetworkService,
  endpoints: readonly NetworkServiceEndpoint[],
): NetworkServiceEndpoint[] {
  if (ns.matches.length === 0) return [...endpoints];
  for (const match of ns.matches) {
    if (!isSubset(requestLabels, match.sourceSelector, requestLabels)) continue;
    const candidates: NetworkServiceEndpoint[] = [];
    for (const route of match.routes) {
      for (const nse of endpoints) {
        const labels = nse.networkServiceLabels[ns.name]?.labels ?? {};
        if (isSubset(labels, route.destinationSelector, requestLabels)) candidates.push(nse);
      }
    }
    if (match.fallthrough && candidates.length === 0) continue;
    if (match.metadata !== undefined && match.routes.length === 0 && candidates.length === 0) {
      return [...endpoints];
    }
    return candidates;
  }
  return [];
}
