import type { Connection } from '../../api/index.js';
import { writeClientToken } from '../../api/token/index.js';
import type { ClientToken, TokenPeer } from '../../api/token/index.js';
import { OutgoingMetadata, outgoingMetadataOf, withOutgoingMetadata } from '../core/call-metadata.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import { setSegmentToken } from './common.js';
import type { UpdateTokenClientOptions } from './options.js';

/**
 * updatetoken client: mints this hop's token for the server it calls (aud = that server), puts it in
 * our own path segment and in the outgoing call's metadata (`nsm-client-token`, `-expires`; upstream's
 * per-RPC credentials), where the server's updatetoken copies it into our segment again. A token
 * per call, refreshes included, with exp = now + lifetime; calls in the same exp second get the same
 * token (MintOptions.reuse: the claims are identical, only a fresh signature would differ). So a
 * burst of connects signs once per second, not once per call, and the server verifies once (its
 * verify cache knows the token). The element that makes the call sends `outgoingMetadataOf(ctx)`.
 */
export function updateTokenClient(options: UpdateTokenClientOptions): ChainElement {
  const { signer, server } = options;
  const audience = (ctx: ChainContext): TokenPeer | undefined =>
    typeof server === 'function' ? server(ctx) : server;
  function withToken(ctx: ChainContext, conn: Connection | undefined): ChainContext {
    const token: ClientToken = signer.mint(audience(ctx), { reuse: true });
    const own = conn?.path?.pathSegments[conn.path.index];
    if (own) setSegmentToken(own, token);
    // A copy per call: a metadata object from further up is never changed under its other users.
    const metadata = new OutgoingMetadata();
    for (const [k, v] of outgoingMetadataOf(ctx)?.entries() ?? []) metadata.set(k, v);
    writeClientToken(metadata, token);
    return withOutgoingMetadata(ctx, metadata);
  }
  return {
    name: 'updatetoken',
    order: { requires: ['updatepath'], after: ['begin'] },
    request: (ctx, request, next) => next.request(withToken(ctx, request.connection), request),
    close: (ctx, connection, next) => next.close(withToken(ctx, connection), connection),
  };
}
