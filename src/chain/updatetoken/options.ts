import type { ChainContext } from '../core/context.js';
import type { TokenPeer, TokenSigner } from '../../api/token/index.js';

export interface UpdateTokenServerOptions {
  /** Mints this hop's tokens (sub = our SPIFFE ID), signed with our SVID key. */
  readonly signer: TokenSigner;
}

export interface UpdateTokenClientOptions {
  readonly signer: TokenSigner;
  /**
   * The server this client calls, as the token's audience (upstream takes it from the TLS connection;
   * here the dialling side knows whom it expects). Undefined: a token without aud, as upstream
   * without a TLS peer — tokens_chained at the server then refuses it.
   */
  readonly server?: TokenPeer | ((ctx: ChainContext) => TokenPeer | undefined);
}
