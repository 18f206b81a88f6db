import type { Chain } from '../core/chain.js';
import { outgoingMetadataOf, withIncomingMetadata } from '../core/call-metadata.js';
import { ChainContext } from '../core/context.js';
import type { PeerInfo } from '../core/context.js';
import type { ChainElement } from '../core/element.js';

/**
 * `connect` to a server chain in the same process, as if over gRPC but without a socket: the server
 * chain gets a fresh context (the caller's cancellation, deadline, logger and clock, none of the
 * caller's chain values) with `peer` as the caller and the caller's outgoing metadata as the call's
 * metadata. The agent's own client chains (a legacy workload's connection) reach its nsmgr this way:
 * the same elements run — tokens minted, copied and checked — as for a client on nsm.sock.
 */
export function inProcessConnect(server: Chain, peer: () => PeerInfo): ChainElement {
  const serverCtx = (ctx: ChainContext): ChainContext => {
    const base = new ChainContext({
      log: ctx.log,
      clock: ctx.clock,
      random: ctx.random,
      signal: ctx.signal,
      ...(ctx.deadline === undefined ? {} : { deadline: ctx.deadline }),
      peer: peer(),
    });
    const metadata = outgoingMetadataOf(ctx);
    return metadata ? withIncomingMetadata(base, metadata) : base;
  };
  return {
    name: 'connect',
    request: (ctx, request) => server.request(serverCtx(ctx), request),
    close: (ctx, connection) => server.close(serverCtx(ctx), connection),
  };
}
