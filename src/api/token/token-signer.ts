import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AgentError, describe } from '../../errors/index.js';
import type { Clock } from '../../host/index.js';
import type { ClientToken } from './client-token-metadata.js';
import { mintToken } from './jwt.js';

/** Peers whose last token is kept for reuse (see mint); a mesh has far fewer live peers per server. */
const MAX_REUSED_TOKENS = 1024;

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
  mint(peer?: TokenPeer, options?: MintOptions): ClientToken;
}

export interface MintOptions {
  /**
   * May return the token an earlier `reuse` mint made for this audience when it has the exp second
   * wanted now: the claims are then identical (exp is whole seconds), only a fresh randomized
   * signature would differ, and an ES256 signature costs ~25–40 µs on a fast core (~0.2 ms on a
   * small VM), and the peer verifying a token it has seen skips its ECDSA verify too. For tokens a
   * chain mints per call (updatetoken client and server, a registry path segment); off by default.
   */
  readonly reuse?: boolean;
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
    throw new AgentError('CONFIG_INVALID', 'the token signing key does not belong to the SVID certificate', {
      hint: 'the key and the certificate must be one SVID’s pair: check the identity files (re-enrol the host, or re-run server init on a fresh data dir, if they were replaced)',
    });
  }
  const notAfterMs = Date.parse(cert.validTo);
  const maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_MAX_TOKEN_LIFETIME_MS;
  const { spiffeId, clock } = options;
  // The last `reuse` token per audience (see MintOptions); expiresAtMs is returned exact all the same.
  const recent = new Map<string, { readonly expSeconds: number; readonly token: string }>();
  return {
    spiffeId,
    mint(peer, mintOptions) {
      let expiresAtMs = Math.min(clock.now() + maxLifetimeMs, notAfterMs);
      if (peer?.notAfterMs !== undefined) expiresAtMs = Math.min(expiresAtMs, peer.notAfterMs);
      const audience = peer?.spiffeId ?? '';
      const expSeconds = Math.floor(expiresAtMs / 1000);
      const reuse = mintOptions?.reuse === true;
      const last = reuse ? recent.get(audience) : undefined;
      if (last?.expSeconds === expSeconds) return { token: last.token, expiresAtMs };
      const token = mintToken({
        privateKey: key,
        subject: spiffeId,
        ...(peer ? { audience: peer.spiffeId } : {}),
        expiresAtMs,
      });
      if (!reuse) return { token, expiresAtMs };
      // Re-inserted at the end, so the least recently minted audience goes first when full.
      recent.delete(audience);
      if (recent.size >= MAX_REUSED_TOKENS) recent.delete(recent.keys().next().value ?? '');
      recent.set(audience, { expSeconds, token });
      return { token, expiresAtMs };
    },
  };
}
