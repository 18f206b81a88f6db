import type { PathSegment } from '../../api/index.js';
import { toTimestamp } from '../../api/index.js';
import type { ClientToken, TokenPeer } from '../../api/token/index.js';
import type { ChainContext } from '../core/context.js';

/** Writes a minted token and its expiry into a path segment. */
export function setSegmentToken(segment: PathSegment, token: ClientToken): void {
  segment.token = token.token;
  segment.expires = toTimestamp(token.expiresAtMs);
}

/** The TLS peer of the call as a token audience (its certificate's NotAfter caps the lifetime). */
export function tokenPeerOf(ctx: ChainContext): TokenPeer | undefined {
  const peer = ctx.peer;
  if (peer?.spiffeId === undefined) return undefined;
  const notAfterMs = peer.certificate ? Date.parse(peer.certificate.validTo) : Number.NaN;
  return Number.isNaN(notAfterMs) ? { spiffeId: peer.spiffeId } : { spiffeId: peer.spiffeId, notAfterMs };
}
