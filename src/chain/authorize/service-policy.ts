import { AgentError } from '../../errors/agent-error.js';
import type { ConnectionPolicy } from './policies.js';
import { requesterOf } from './policies.js';
import { compileSpiffeIdPattern } from './spiffe-id-pattern.js';
import type { SpiffeIdPattern } from './spiffe-id-pattern.js';

/**
 * The allow list of one network service: SPIFFE ID patterns, or undefined when the service sets none
 * (then anyone the token policies let through may connect).
 */
export type AllowedSpiffeIds = (networkService: string) => readonly string[] | undefined;

/**
 * service_allowed: the requester (sub of the first path segment's token) must match one of the
 * service's patterns. Patterns are compiled once per distinct list; a bad pattern refuses the request
 * with CONFIG_INVALID instead of letting it through.
 */
export function serviceAllowedPolicy(allowed: AllowedSpiffeIds): ConnectionPolicy {
  const compiled = new WeakMap<readonly string[], readonly SpiffeIdPattern[]>();
  return {
    name: 'service_allowed',
    check(input) {
      const service = input.connection.networkService;
      const list = allowed(service);
      if (list === undefined) return undefined;
      let patterns = compiled.get(list);
      if (!patterns) {
        patterns = list.map(compileSpiffeIdPattern);
        compiled.set(list, patterns);
      }
      const requester = requesterOf(input);
      if (requester !== undefined && patterns.some((p) => p.matches(requester))) return undefined;
      return new AgentError(
        'PERMISSION_DENIED',
        `Request of connection "${input.connection.id}" for network service "${service}" refused (policy service_allowed): ${requester ?? 'the requester (no SPIFFE ID in the first path segment token)'} is not in the service's allow list [${list.join(', ')}]`,
        {
          hint: `ask the owner of "${service}" to allow your SPIFFE ID, or connect with an SVID that matches one of the patterns`,
          details: { policy: 'service_allowed', connId: input.connection.id, networkService: service },
        },
      );
    },
  };
}
