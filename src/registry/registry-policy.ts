import type { X509Certificate } from 'node:crypto';
import { decodeToken, verifyTokenSignature } from '../api/token/index.js';
import type { DecodedToken } from '../api/token/index.js';
import { AgentError } from '../errors/index.js';

/**
 * Authorization of registry Register/Unregister, as upstream's default registry server policies
 * (docs/nsm-api.md §5.3; sdk `tools/opa/policies` common/*, registry/*, server/*), written as
 * functions instead of Rego. Find is never checked (only mTLS), as upstream.
 */
export interface RegistryPolicyInput {
  readonly operation: 'Register' | 'Unregister';
  readonly resource: 'network service endpoint' | 'network service';
  /** NSE or NS name (`resource_name`). */
  readonly resourceName: string;
  /** `sub` of the first path segment's token, '' when it has none (`resource_id`). */
  readonly resourceId: string;
  /** SPIFFE ID that owns the name (first registrant), undefined while the name is free. */
  readonly owner: string | undefined;
  /** The left side of the path, segments 0..index (`path_segments`). */
  readonly segments: readonly { readonly token: string }[];
  readonly index: number;
  /** The peer's TLS leaf (`auth_info.certificate`). */
  readonly peerCertificate: X509Certificate | undefined;
  readonly nowMs: number;
  /** Why the caller's nsm-client-token is absent or unusable; undefined when it was sent. */
  readonly peerTokenProblem: string | undefined;
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

// Several policies read the same few tokens; each input decodes each token once.
const decodedFor = new WeakMap<RegistryPolicyInput, Map<string, DecodedToken | undefined>>();

function tryDecode(input: RegistryPolicyInput, token: string): DecodedToken | undefined {
  let memo = decodedFor.get(input);
  if (!memo) decodedFor.set(input, (memo = new Map<string, DecodedToken | undefined>()));
  if (memo.has(token)) return memo.get(token);
  let decoded: DecodedToken | undefined;
  try {
    decoded = decodeToken(token);
  } catch {
    decoded = undefined;
  }
  memo.set(token, decoded);
  return decoded;
}

/** The caller's own segment is the one before ours; a problem there is the caller's missing token. */
function callerSegment(input: RegistryPolicyInput, i: number): boolean {
  return i === input.index - 1 && input.peerTokenProblem !== undefined;
}

/** common/tokens_valid: every segment token decodes as a JWT. */
export const tokensValid: RegistryPolicy = {
  name: 'tokens_valid',
  check(input) {
    for (const [i, s] of input.segments.entries()) {
      if (tryDecode(input, s.token)) continue;
      if (callerSegment(input, i)) {
        return refuse(
          input,
          'tokens_valid',
          `no usable nsm-client-token metadata (${input.peerTokenProblem ?? ''})`,
          TOKEN_HINT,
          'UNAUTHENTICATED',
        );
      }
      if (i === input.index - 1) {
        return refuse(
          input,
          'tokens_valid',
          'the caller’s nsm-client-token is not a JWT',
          TOKEN_HINT,
          'UNAUTHENTICATED',
        );
      }
      return refuse(input, 'tokens_valid', `the token of path segment ${i} is not a JWT`, PATH_HINT);
    }
    return undefined;
  },
};

/** common/tokens_expired: every segment token has exp in the future. */
export const tokensExpired: RegistryPolicy = {
  name: 'tokens_expired',
  check(input) {
    const now = input.nowMs / 1000;
    for (const [i, s] of input.segments.entries()) {
      const exp = tryDecode(input, s.token)?.claims.exp;
      if (exp === undefined || !(now < exp)) {
        const whose =
          i === input.index - 1 ? 'the caller’s nsm-client-token' : `the token of path segment ${i}`;
        return refuse(
          input,
          'tokens_expired',
          `${whose} has expired or has no exp claim`,
          'mint a fresh token for every call; check that the clocks agree',
          'UNAUTHENTICATED',
        );
      }
    }
    return undefined;
  },
};

/** common/tokens_chained: each token's aud contains the next token's sub. */
export const tokensChained: RegistryPolicy = {
  name: 'tokens_chained',
  check(input) {
    for (let i = 0; i + 1 < input.segments.length; i++) {
      const a = tryDecode(input, input.segments[i]?.token ?? '')?.claims;
      const b = tryDecode(input, input.segments[i + 1]?.token ?? '')?.claims;
      if (a && b?.sub !== undefined && a.aud.includes(b.sub)) continue;
      return refuse(
        input,
        'tokens_chained',
        `the token of path segment ${i} is not addressed to the next hop (its aud ${JSON.stringify(a?.aud ?? [])} lacks ${b?.sub ?? 'the next sub'})`,
        'mint the token with aud = [the SPIFFE ID of the server you call]',
      );
    }
    return undefined;
  },
};

/** server/prev_token_signed: the caller's segment (index-1) is signed by the peer's TLS certificate. */
export const prevTokenSigned: RegistryPolicy = {
  name: 'prev_token_signed',
  check(input) {
    const prev = input.index - 1;
    if (prev < 0) {
      const why = input.pathMissing
        ? `the call has no "path" metadata${input.peerTokenProblem === undefined ? '' : ' and no usable nsm-client-token metadata'}, so there is no caller token to check`
        : 'the path has no caller segment';
      return refuse(
        input,
        'prev_token_signed',
        why,
        `${PATH_HINT}; and ${TOKEN_HINT}`,
        input.peerTokenProblem === undefined ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED',
      );
    }
    const token = input.segments[prev]?.token ?? '';
    if (input.peerCertificate && verifyTokenSignature(token, input.peerCertificate)) return undefined;
    if (callerSegment(input, prev)) {
      return refuse(
        input,
        'prev_token_signed',
        `no usable nsm-client-token metadata (${input.peerTokenProblem ?? ''})`,
        TOKEN_HINT,
        'UNAUTHENTICATED',
      );
    }
    return refuse(
      input,
      'prev_token_signed',
      'the caller’s token is not signed by the key of the certificate it connected with',
      'sign nsm-client-token with the private key of the SVID used for this TLS connection',
    );
  },
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
