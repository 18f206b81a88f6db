// NSM per-RPC tokens (docs/nsm-api.md §5.2): ES256 JWTs signed with the SVID key, and their metadata.
export { decodeToken, mintToken, verifyTokenSignature } from './jwt.js';
export type { DecodedToken, MintTokenOptions, TokenClaims } from './jwt.js';
export { formatRfc3339Nano, parseRfc3339Nano } from './rfc3339-nano.js';
export {
  CLIENT_TOKEN_EXPIRES_KEY,
  CLIENT_TOKEN_KEY,
  clientTokenProblem,
  readClientToken,
  writeClientToken,
} from './client-token-metadata.js';
export type {
  ClientToken,
  ClientTokenResult,
  ReadableMetadata,
  WritableMetadata,
} from './client-token-metadata.js';
export { createTokenSigner, DEFAULT_MAX_TOKEN_LIFETIME_MS } from './token-signer.js';
export type { MintOptions, TokenPeer, TokenSigner, TokenSignerOptions } from './token-signer.js';
