import type { X509Certificate } from 'node:crypto';
import { decodeToken, verifyTokenSignature } from '../../api/token/index.js';
import type { DecodedToken } from '../../api/token/index.js';

/**
 * NSM's token policies (docs/nsm-api.md §5.3; sdk `tools/opa/policies` common/*, server/*, client/*)
 * as functions instead of Rego, shared by the NetworkService authorize element and the registry. Each
 * check returns undefined (allowed) or a TokenRefusal; the caller turns it into its own AgentError,
 * so each API keeps its wording ("Request of connection …", "Register of … refused …").
 */
export interface TokenPolicyInput {
  /** The segments the policy looks at: the left side of the path (server) or all of it (client). */
  readonly segments: readonly { readonly token: string }[];
  /** This hop's index in `segments`; the caller sits at index-1, the next hop at index+1. */
  readonly index: number;
  /** The peer's TLS leaf (`auth_info.certificate`). */
  readonly peerCertificate: X509Certificate | undefined;
  readonly nowMs: number;
  /** Why the caller's nsm-client-token is absent or unusable; undefined when it was sent. */
  readonly peerTokenProblem: string | undefined;
}

export type TokenRefusalCode = 'PERMISSION_DENIED' | 'UNAUTHENTICATED';

export interface TokenRefusal {
  /** Upstream's policy file name, e.g. `tokens_valid`. */
  readonly policy: string;
  readonly why: string;
  readonly hint: string;
  readonly code: TokenRefusalCode;
}

/** The API-specific words of the refusals: how to send a token, how to send the path. */
export interface TokenPolicyWording<I extends TokenPolicyInput> {
  /** How to send the caller's own token (refusals about segment index-1). */
  readonly tokenHint: string;
  /** How to send the rest of the path (refusals about other segments). */
  readonly pathHint: string;
  /** prev_token_signed when there is no caller segment (index 0). */
  noCallerSegment(input: I): { readonly why: string; readonly hint: string; readonly code: TokenRefusalCode };
}

// Several policies read the same few tokens; each input decodes each token once.
const decodedFor = new WeakMap<object, Map<string, DecodedToken | undefined>>();

/** The token decoded without a signature check (OPA io.jwt.decode), or undefined; memoised per input. */
export function decodeFor(input: object, token: string): DecodedToken | undefined {
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
function callerSegment(input: TokenPolicyInput, i: number): boolean {
  return i === input.index - 1 && input.peerTokenProblem !== undefined;
}

const refusal = (policy: string, why: string, hint: string, code: TokenRefusalCode): TokenRefusal => ({
  policy,
  why,
  hint,
  code,
});

/** common/tokens_valid: every segment token decodes as a JWT. */
export function checkTokensValid<I extends TokenPolicyInput>(
  input: I,
  wording: TokenPolicyWording<I>,
): TokenRefusal | undefined {
  for (const [i, s] of input.segments.entries()) {
    if (decodeFor(input, s.token)) continue;
    if (callerSegment(input, i)) {
      return refusal(
        'tokens_valid',
        `no usable nsm-client-token metadata (${input.peerTokenProblem ?? ''})`,
        wording.tokenHint,
        'UNAUTHENTICATED',
      );
    }
    if (i === input.index - 1) {
      return refusal(
        'tokens_valid',
        'the caller’s nsm-client-token is not a JWT',
        wording.tokenHint,
        'UNAUTHENTICATED',
      );
    }
    return refusal(
      'tokens_valid',
      `the token of path segment ${i} is not a JWT`,
      wording.pathHint,
      'PERMISSION_DENIED',
    );
  }
  return undefined;
}

/** common/tokens_expired: every segment token has exp in the future. */
export function checkTokensExpired(input: TokenPolicyInput): TokenRefusal | undefined {
  const now = input.nowMs / 1000;
  for (const [i, s] of input.segments.entries()) {
    const exp = decodeFor(input, s.token)?.claims.exp;
    if (exp === undefined || !(now < exp)) {
      const whose =
        i === input.index - 1 ? 'the caller’s nsm-client-token' : `the token of path segment ${i}`;
      return refusal(
        'tokens_expired',
        `${whose} has expired or has no exp claim`,
        'mint a fresh token for every call; check that the clocks agree',
        'UNAUTHENTICATED',
      );
    }
  }
  return undefined;
}

/** common/tokens_chained: each token's aud contains the next token's sub. */
export function checkTokensChained(input: TokenPolicyInput): TokenRefusal | undefined {
  for (let i = 0; i + 1 < input.segments.length; i++) {
    const a = decodeFor(input, input.segments[i]?.token ?? '')?.claims;
    const b = decodeFor(input, input.segments[i + 1]?.token ?? '')?.claims;
    if (a && b?.sub !== undefined && a.aud.includes(b.sub)) continue;
    return refusal(
      'tokens_chained',
      `the token of path segment ${i} is not addressed to the next hop (its aud ${JSON.stringify(a?.aud ?? [])} lacks ${b?.sub ?? 'the next sub'})`,
      'mint the token with aud = [the SPIFFE ID of the server you call]',
      'PERMISSION_DENIED',
    );
  }
  return undefined;
}

/** server/prev_token_signed: the caller's segment (index-1) is signed by the peer's TLS certificate. */
export function checkPrevTokenSigned<I extends TokenPolicyInput>(
  input: I,
  wording: TokenPolicyWording<I>,
): TokenRefusal | undefined {
  const prev = input.index - 1;
  if (prev < 0) {
    const r = wording.noCallerSegment(input);
    return refusal('prev_token_signed', r.why, r.hint, r.code);
  }
  const token = input.segments[prev]?.token ?? '';
  if (input.peerCertificate && verifyTokenSignature(token, input.peerCertificate)) return undefined;
  if (callerSegment(input, prev)) {
    return refusal(
      'prev_token_signed',
      `no usable nsm-client-token metadata (${input.peerTokenProblem ?? ''})`,
      wording.tokenHint,
      'UNAUTHENTICATED',
    );
  }
  return refusal(
    'prev_token_signed',
    'the caller’s token is not signed by the key of the certificate it connected with',
    'sign nsm-client-token with the private key of the SVID used for this TLS connection',
    'PERMISSION_DENIED',
  );
}

/**
 * client/next_token_signed: the token of segment index+1 (the server we called) verifies with the
 * certificate that server presented. `serverCertificate` undefined (no TLS) refuses, as upstream.
 */
export function checkNextTokenSigned(
  input: TokenPolicyInput,
  serverCertificate: X509Certificate | undefined,
): TokenRefusal | undefined {
  const next = input.segments[input.index + 1];
  if (!next) {
    return refusal(
      'next_token_signed',
      `the returned path has no segment after ours (index ${input.index})`,
      'the server must append its own path segment (put updatepath in its chain)',
      'PERMISSION_DENIED',
    );
  }
  if (serverCertificate && verifyTokenSignature(next.token, serverCertificate)) return undefined;
  return refusal(
    'next_token_signed',
    serverCertificate
      ? 'the server’s path segment token is not signed by the key of the certificate it presented'
      : 'there is no server certificate to check the server’s path segment token against',
    serverCertificate
      ? 'the server must sign its segment token with the private key of its SVID (updatetoken server)'
      : 'call the server over mTLS so its certificate is known',
    'PERMISSION_DENIED',
  );
}
