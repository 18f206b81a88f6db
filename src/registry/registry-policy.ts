import {
  checkPrevTokenSigned,
  checkTokensChained,
  checkTokensExpired,
  checkTokensValid,
} from '../chain/authorize/index.js';
import type { TokenPolicyInput, TokenPolicyWording, TokenRefusal } from '../chain/authorize/index.js';
import { AgentError } from '../errors/index.js';

/**
 * Authorization of registry Register/Unregister, as upstream's default registry server policies
 * (docs/nsm-api.md §5.3; sdk `tools/opa/policies` common/*, registry/*, server/*), written as
 * functions instead of Rego. Find is never checked (only mTLS), as upstream.
 */
export interface RegistryPolicyInput extends TokenPolicyInput {
  readonly operation: 'Register' | 'Unregister';
  readonly resource: 'network service endpoint' | 'network service';
  /** NSE or NS name (`resource_name`). */
  readonly resourceName: string;
  /** `sub` of the first path segment's token, '' when it has none (`resource_id`). */
  readonly resourceId: string;
  /** SPIFFE ID that owns the name (first registrant), undefined while the name is free. */
  readonly owner: string | undefined;
  // segments (the left side of the path, 0..index), index, peerCertificate, nowMs and
  // peerTokenProblem come from TokenPolicyInput.
  /** The call had no `path` metadata, so the policies see an empty path (as upstream). */
  readonly pathMissing: boolean;
}

export interface RegistryPolicy {
  /** Upstream's policy file name, e.g. `tokens_valid`. */
  readonly name: string;
  /** undefined = allowed; otherwise the refusal, with a message that says what to do. */
  check(input: RegistryPolicyInput): AgentError | undefined;
}

const TOKEN_HINT =
  'send nsm-client-token (an ES256 JWT signed with your SVID key: sub = your SPIFFE ID, aud = [the registry’s SPIFFE ID], exp) and nsm-client-token-expires (RFC 3339) metadata, as NSM’s token.NewPerRPCCredentials does';
const PATH_HINT =
  'send "path" metadata: {"Index":0,"PathSegments":null} on the first call, then what the registry returned in its "path" response header';

function refuse(
  input: RegistryPolicyInput,
  policy: string,
  why: string,
  hint: string,
  code: 'PERMISSION_DENIED' | 'UNAUTHENTICATED' = 'PERMISSION_DENIED',
): AgentError {
  return new AgentError(
    code,
    `${input.operation} of ${input.resource} "${input.resourceName}" refused (policy ${policy}): ${why}`,
    {
      hint,
      details: { policy, resource: input.resourceName },
    },
  );
}

function asError(input: RegistryPolicyInput, r: TokenRefusal | undefined): AgentError | undefined {
  return r && refuse(input, r.policy, r.why, r.hint, r.code);
}

const wording: TokenPolicyWording<RegistryPolicyInput> = {
  tokenHint: TOKEN_HINT,
  pathHint: PATH_HINT,
  noCallerSegment: (input) => ({
    why: input.pathMissing
      ? `the call has no "path" metadata${input.peerTokenProblem === undefined ? '' : ' and no usable nsm-client-token metadata'}, so there is no caller token to check`
      : 'the path has no caller segment',
    hint: `${PATH_HINT}; and ${TOKEN_HINT}`,
    code: input.peerTokenProblem === undefined ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED',
  }),
};

// The token policies are the NetworkService ones (src/chain/authorize), worded for the registry.

/** common/tokens_valid: every segment token decodes as a JWT. */
export const tokensValid: RegistryPolicy = {
  name: 'tokens_valid',
  check: (input) => asError(input, checkTokensValid(input, wording)),
};

/** common/tokens_expired: every segment token has exp in the future. */
export const tokensExpired: RegistryPolicy = {
  name: 'tokens_expired',
  check: (input) => asError(input, checkTokensExpired(input)),
};

/** common/tokens_chained: each token's aud contains the next token's sub. */
export const tokensChained: RegistryPolicy = {
  name: 'tokens_chained',
  check: (input) => asError(input, checkTokensChained(input)),
};

/** server/prev_token_signed: the caller's segment (index-1) is signed by the peer's TLS certificate. */
export const prevTokenSigned: RegistryPolicy = {
  name: 'prev_token_signed',
  check: (input) => asError(input, checkPrevTokenSigned(input, wording)),
};

/** registry/client_allowed: a name belongs to the SPIFFE ID that registered it first. */
export const clientAllowed: RegistryPolicy = {
  name: 'client_allowed',
  check(input) {
    if (input.owner === undefined || input.owner === input.resourceId) return undefined;
    return refuse(
      input,
      'client_allowed',
      `the name is owned by ${input.owner || '(an unauthenticated registrant)'}, the first registrant; the caller is ${input.resourceId || '(unidentified)'}`,
      'choose another name, or have the owner unregister it first',
    );
  },
};

/** NSM_REGISTRY_SERVER_POLICIES as shipped: common/*, registry/*, server/*. */
export const DEFAULT_REGISTRY_POLICIES: readonly RegistryPolicy[] = Object.freeze([
  tokensValid,
  tokensExpired,
  tokensChained,
  prevTokenSigned,
  clientAllowed,
]);

/** Upstream's `authorize.Any()`: no checks at all. For tests and trusted local sockets only. */
export const ALLOW_ANY: readonly RegistryPolicy[] = Object.freeze([]);

/** The first refusal, or undefined when every policy allows. */
export function evaluatePolicies(
  policies: readonly RegistryPolicy[],
  input: RegistryPolicyInput,
): AgentError | undefined {
  for (const p of policies) {
    const refusal = p.check(input);
    if (refusal) return refusal;
  }
  return undefined;
}
