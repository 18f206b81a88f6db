import { equals } from '../api/index.js';
import { MatchSchema } from '../api/index.js';
import type { Match, NetworkService, NetworkServiceEndpoint } from '../api/index.js';

/**
 * Query-template matching of Find, as sdk `matchutils.MatchNetworkServiceEndpoints` /
 * `MatchNetworkServices` (used by the memory registry). Go tells a nil list/map from an empty one,
 * but on the wire they are the same (nothing is sent), so "unset" here means "empty".
 *
 * NSE template (every set field must hold):
 *  - name: exact;
 *  - network_service_labels: for each service in the template, the NSE has that service and every
 *    template label with an equal value (an empty label map for a service only requires the service);
 *  - expiration_time: equal whole seconds (upstream's rule; rarely useful);
 *  - network_service_names: every template name is among the NSE's (subset);
 *  - url: substring of the NSE's url.
 * NS template: name exact; payload exact; matches deep-equal (order included) when non-empty.
 */
export function matchNetworkServiceEndpoint(
  template: NetworkServiceEndpoint | undefined,
  nse: NetworkServiceEndpoint,
): boolean {
  if (!template) return true;
  if (template.name !== '' && template.name !== nse.name) return false;
  for (const [service, wanted] of Object.entries(template.networkServiceLabels)) {
    const have = nse.networkServiceLabels[service];
    if (!have) return false;
    for (const [k, v] of Object.entries(wanted.labels)) {
      if (have.labels[k] !== v) return false;
    }
  }
  if (template.expirationTime && template.expirationTime.seconds !== (nse.expirationTime?.seconds ?? 0n))
    return false;
  // Lists of a service or two: includes() beats building a Set per endpoint per lookup.
  if (!template.networkServiceNames.every((n) => nse.networkServiceNames.includes(n))) return false;
  if (template.url !== '' && !nse.url.includes(template.url)) return false;
  return true;
}

export function matchNetworkService(template: NetworkService | undefined, ns: NetworkService): boolean {
  if (!template) return true;
  if (template.name !== '' && template.name !== ns.name) return false;
  if (template.payload !== '' && template.payload !== ns.payload) return false;
  if (template.matches.length > 0 && !sameMatches(template.matches, ns.matches)) return false;
  return true;
}

function sameMatches(a: readonly Match[], b: readonly Match[]): boolean {
  return (
    a.length === b.length &&
    a.every((m, i) => {
      const other = b[i];
      return other !== undefined && equals(MatchSchema, m, other);
    })
  );
}
