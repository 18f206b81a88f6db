import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AgentError, describe } from '../../errors/index.js';
import type { Clock } from '../../host/index.js';
import type { ClientToken } from './client-token-metadata.js';
import { mintToken } from './jwt.js';

/** NSM's default `NSM_MAX_TOKEN_LIFETIME`. */
export const DEFAULT_MAX_TOKEN_LIFETIME_MS = 10 * 60_000;

/** The peer a token is minted for: its SPIFFE ID and, when known, its certificate's NotAfter. */
export interface TokenPeer {
  readonly spiffeId: string;
  readonly notAfterMs?: number;
}

/** Mints tokens for one identity, the way sdk `spiffejwt.TokenGeneratorFunc` does. */
export interface TokenSigner {
  readonly spiffeId: string;
  /**
   * A token with `sub` = our SPIFFE ID, `aud` = [peer] (none without a peer), expiring at
   * min(now + max lifetime, our certificate's NotAfter, the peer certificate's NotAfter).
   */
  mint(peer?: TokenPeer): ClientToken;
}

export interface TokenSignerOptions {
  readonly spiffeId: string;
  /** Our SVID leaf (PEM); its NotAfter caps every token, and the key must belong to it. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly clock: Clock;
  readonly maxLifetimeMs?: number;
}

export function createTokenSigner(options: TokenSignerOptions): TokenSigner {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(options.certificatePem);
    key = createPrivateKey(options.privateKeyPem);
  } catch (e: unknown) {
    throw new AgentError('CONFIG_INVALID', `the token signer’s SVID does not parse: ${describe(e)}`, {
      cause: e,
    });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new AgentError('CONFIG_INVALID', 'the token signing key does not belong to the SVID certificate');
  }
  const notAfterMs = Date.parse(cert.validTo);
  const maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_MAX_TOKEN_LIFETIME_MS;
  const { spiffeId, clock } = options;
  return {
    spiffeId,
    mint(peer) {
      let expiresAtMs = Math.min(clock.now() + maxLifetimeMs, notAfterMs);
      if (peer?.notAfterMs !== undefined) expiresAtMs = Math.min(expiresAtMs, peer.notAfterMs);
      const token = mintToken({
        privateKey: key,
        subject: spiffeId,
        ...(peer ? { audience: peer.spiffeId } : {}),
        expiresAtMs,
      });
      return { token, expiresAtMs };
    },
  };
}
