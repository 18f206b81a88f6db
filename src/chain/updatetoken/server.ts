import type { Connection } from '../../api/index.js';
import { toTimestamp } from '../../api/index.js';
import { readClientToken } from '../../api/token/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { incomingMetadataOf } from '../core/call-metadata.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import { setSegmentToken, tokenPeerOf } from './common.js';
import type { UpdateTokenServerOptions } from './options.js';

/**
 * updatetoken server (nsm-api.md §4.4): the caller's per-call token (`nsm-client-token` /
 * `nsm-client-token-expires` metadata) becomes the token and expiry of the previous path segment —
 * when the metadata is absent or unusable it only warns and keeps what the caller put in the
 * segment — and this hop's own segment gets a token addressed to the caller (fresh claims each call;
 * the signed token is reused while its claims stay the same, see MintOptions.reuse). Runs on Close too,
 * as upstream. authorize (after it) checks the result; timeout reads the previous segment's expiry.
 */
export function updateTokenServer(options: UpdateTokenServerOptions): ChainElement {
  const { signer } = options;
  return {
    name: 'updatetoken',
    order: { requires: ['updatepath'], after: ['begin'] },
    request(ctx, request, next) {
      if (request.connection) updateTokens(ctx, request.connection, signer);
      return next.request(ctx, request);
    },
    close(ctx, connection, next) {
      updateTokens(ctx, connection, signer);
      return next.close(ctx, connection);
    },
  };
}

function updateTokens(ctx: ChainContext, conn: Connection, signer: TokenSigner): void {
  const path = conn.path;
  if (!path) return;
  const prev = path.pathSegments[path.index - 1];
  if (prev) {
    const metadata = incomingMetadataOf(ctx);
    const read = metadata ? readClientToken(metadata) : ({ kind: 'missing' } as const);
    if (read.kind === 'present') {
      prev.token = read.value.token;
      prev.expires = toTimestamp(read.value.expiresAtMs);
    } else {
      ctx.log.warn(
        {
          connId: conn.id,
          peer: ctx.peer?.spiffeId,
          reason: read.kind === 'missing' ? 'no nsm-client-token metadata' : read.reason,
        },
        'the caller sent no usable nsm-client-token; keeping the token of its path segment as it sent it',
      );
    }
  }
  // reuse: the token this server minted for the same caller in the same exp second (identical
  // claims, only the random signature would differ); concurrent connects from one agent share one.
  const own = path.pathSegments[path.index];
  if (own) setSegmentToken(own, signer.mint(tokenPeerOf(ctx), { reuse: true }));
}
