import type { X509Certificate } from 'node:crypto';
import type { Connection } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import {
  checkNextTokenSigned,
  checkPrevTokenSigned,
  checkTokensChained,
  checkTokensExpired,
  checkTokensValid,
  decodeFor,
} from './token-policies.js';
import type { TokenPolicyInput, TokenPolicyWording, TokenRefusal } from './token-policies.js';

/** What a NetworkService policy sees (upstream's OPA input: the path plus `auth_info`). */
export interface ConnectionPolicyInput extends TokenPolicyInput {
  readonly side: 'server' | 'client';
  /** The connection as the policy sees it (request on the server side, the reply on the client side). */
  readonly connection: Connection;
  /** SPIFFE ID of the TLS peer: our caller on the server side, the server on the client side. */
  readonly peerSpiffeId: string | undefined;
  /** The certificate the server we called presented (client side only). */
  readonly serverCertificate: X509Certificate | undefined;
}

export interface ConnectionPolicy {
  /** Upstream's policy file name (`tokens_valid`) or our own (`service_allowed`). */
  readonly name: string;
  /** undefined = allowed; otherwise the refusal, with a message that says what to do. */
  check(input: ConnectionPolicyInput): AgentError | undefined;
}

const TOKEN_HINT =
  'send nsm-client-token (an ES256 JWT signed with your SVID key: sub = your SPIFFE ID, aud = [the SPIFFE ID of the server you call], exp) and nsm-client-token-expires (RFC 3339) metadata: put updatetoken in the client chain';
const PATH_HINT =
  'resend the connection exactly as it was returned (every path segment with its token), not a copy edited by hand';

/** The refusal as an AgentError naming the policy, the connection and what to do. */
export function refusalError(input: ConnectionPolicyInput, r: TokenRefusal): AgentError {
  const conn = input.connection;
  const what =
    input.side === 'server'
      ? `Request of connection "${conn.id}" for network service "${conn.networkService}"`
      : `the reply to connection "${conn.id}" for network service "${conn.networkService}"`;
  return new AgentError(r.code, `${what} refused (policy ${r.policy}): ${r.why}`, {
    hint: r.hint,
    details: { policy: r.policy, connId: conn.id, networkService: conn.networkService },
  });
}

const wording: TokenPolicyWording<ConnectionPolicyInput> = {
  tokenHint: TOKEN_HINT,
  pathHint: PATH_HINT,
  noCallerSegment: (input) => ({
    why:
      input.peerTokenProblem === undefined
        ? 'the path has no caller segment before ours'
        : `the path has no caller segment and the call has no usable nsm-client-token metadata (${input.peerTokenProblem})`,
    hint: `send the connection with your own segment at path.index (updatepath in the client chain); ${TOKEN_HINT}`,
    code: input.peerTokenProblem === undefined ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED',
  }),
};

const policy = (
  name: string,
  check: (input: ConnectionPolicyInput) => TokenRefusal | undefined,
): ConnectionPolicy => ({
  name,
  check(input) {
    const r = check(input);
    return r && refusalError(input, r);
  },
});

/** common/tokens_valid */
export const tokensValid = policy('tokens_valid', (input) => checkTokensValid(input, wording));
/** common/tokens_expired */
export const tokensExpired = policy('tokens_expired', checkTokensExpired);
/** common/tokens_chained */
export const tokensChained = policy('tokens_chained', checkTokensChained);
/** server/prev_token_signed */
export const prevTokenSigned = policy('prev_token_signed', (input) => checkPrevTokenSigned(input, wording));
/** client/next_token_signed */
export const nextTokenSigned = policy('next_token_signed', (input) =>
  checkNextTokenSigned(input, input.serverCertificate),
);

/** `authorize.NewServer()` as shipped: common/* + server/*. */
export const DEFAULT_SERVER_POLICIES: readonly ConnectionPolicy[] = Object.freeze([
  tokensValid,
  tokensExpired,
  tokensChained,
  prevTokenSigned,
]);

/** `authorize.NewClient()` as shipped: common/* + client/*. */
export const DEFAULT_CLIENT_POLICIES: readonly ConnectionPolicy[] = Object.freeze([
  tokensValid,
  tokensExpired,
  tokensChained,
  nextTokenSigned,
]);

/** The first refusal, or undefined when every policy allows. */
export function evaluateConnectionPolicies(
  policies: readonly ConnectionPolicy[],
  input: ConnectionPolicyInput,
): AgentError | undefined {
  for (const p of policies) {
    const refusal = p.check(input);
    if (refusal) return refusal;
  }
  return undefined;
}

/**
 * Who asked for the connection: `sub` of the first path segment's token. With the token policies
 * before it (chained, each hop's token signed by the TLS peer) it names the original client even
 * when the request came through other hops; undefined when that token does not decode.
 */
export function requesterOf(input: ConnectionPolicyInput): string | undefined {
  const token = input.segments[0]?.token;
  return token === undefined ? undefined : decodeFor(input, token)?.claims.sub;
}
