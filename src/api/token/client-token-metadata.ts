import { describe } from '../../errors/index.js';
import { formatRfc3339Nano, parseRfc3339Nano } from './rfc3339-nano.js';

/** gRPC metadata keys of NSM's per-RPC credentials (sdk `pkg/tools/token`). */
export const CLIENT_TOKEN_KEY = 'nsm-client-token';
export const CLIENT_TOKEN_EXPIRES_KEY = 'nsm-client-token-expires';

/** The part of grpc-js `Metadata` read here (kept structural: this module imports no gRPC). */
export interface ReadableMetadata {
  get(key: string): readonly (string | Uint8Array)[];
}

/** The part of grpc-js `Metadata` written here. */
export interface WritableMetadata {
  set(key: string, value: string): void;
}

export interface ClientToken {
  readonly token: string;
  readonly expiresAtMs: number;
}

/**
 * What a call carried. Upstream requires exactly one value of each key and an RFC3339Nano expiry;
 * anything else counts as "no token" there (logged, then refused by the policies). Here the reason
 * is kept so the refusal can say what to fix.
 */
export type ClientTokenResult =
  | { readonly kind: 'present'; readonly value: ClientToken }
  | { readonly kind: 'missing' }
  | { readonly kind: 'invalid'; readonly reason: string };

/** Reads `nsm-client-token` / `nsm-client-token-expires`; never puts the token in a reason. */
/** Why a call's token is unusable, in the words policies put in refusals; undefined when present. */
export function clientTokenProblem(result: ClientTokenResult): string | undefined {
  if (result.kind === 'present') return undefined;
  return result.kind === 'missing' ? `the call carries no ${CLIENT_TOKEN_KEY} metadata` : result.reason;
}

export function readClientToken(metadata: ReadableMetadata): ClientTokenResult {
  const tokens = metadata.get(CLIENT_TOKEN_KEY);
  const expires = metadata.get(CLIENT_TOKEN_EXPIRES_KEY);
  if (tokens.length === 0 && expires.length === 0) return { kind: 'missing' };
  if (tokens.length !== 1) {
    return { kind: 'invalid', reason: `${CLIENT_TOKEN_KEY} has ${tokens.length} values, expected exactly 1` };
  }
  if (expires.length !== 1) {
    return {
      kind: 'invalid',
      reason: `${CLIENT_TOKEN_EXPIRES_KEY} has ${expires.length} values, expected exactly 1`,
    };
  }
  const [token] = tokens;
  const [expiresText] = expires;
  if (typeof token !== 'string' || typeof expiresText !== 'string') {
    return { kind: 'invalid', reason: 'the token metadata values are binary, expected text' };
  }
  try {
    return { kind: 'present', value: { token, expiresAtMs: parseRfc3339Nano(expiresText) } };
  } catch (e: unknown) {
    return { kind: 'invalid', reason: `${CLIENT_TOKEN_EXPIRES_KEY}: ${describe(e)}` };
  }
}

/** Sets both keys, replacing any earlier values, as upstream's PerRPCCredentials does. */
export function writeClientToken(metadata: WritableMetadata, value: ClientToken): void {
  metadata.set(CLIENT_TOKEN_KEY, value.token);
  metadata.set(CLIENT_TOKEN_EXPIRES_KEY, formatRfc3339Nano(value.expiresAtMs));
}
