import { Metadata } from '@grpc/grpc-js';
import { EmptySchema, NetworkServiceService, create } from '../../api/index.js';
import { implement } from '../../api/grpc/index.js';
import type { CallContext, ServiceClient, ServiceRegistration } from '../../api/grpc/index.js';
import { systemClock, systemRandom } from '../../host/index.js';
import type { Clock, Random } from '../../host/index.js';
import type { Logger } from '../../log/index.js';
import { outgoingMetadataOf, withIncomingMetadata } from '../core/call-metadata.js';
import type { Chain } from '../core/chain.js';
import { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';

/**
 * Where a chain meets gRPC, in both directions, so every server and client chain of the daemon
 * crosses the wire the same way (and tests use the same code as the product):
 *  - serving: a call becomes a ChainContext carrying the caller's cancellation, its peer (address,
 *    SPIFFE ID, verified certificate — authorize needs it) and its metadata (updatetoken reads the
 *    caller's nsm-client-token from it);
 *  - calling: `connect`, the last element of a client chain, sends what elements put in the
 *    outgoing metadata (updatetoken's token for the next hop) with the request.
 */
export interface ChainEdgeOptions {
  readonly log: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
}

/** The chain context of one served call. */
export function chainContextOf(call: CallContext, options: ChainEdgeOptions): ChainContext {
  const { address, spiffeId, certificate } = call.peer;
  const ctx = new ChainContext({
    log: options.log,
    clock: options.clock ?? systemClock,
    random: options.random ?? systemRandom,
    signal: call.signal,
    peer: {
      address,
      ...(spiffeId === undefined ? {} : { spiffeId }),
      ...(certificate === undefined ? {} : { certificate }),
    },
  });
  return withIncomingMetadata(ctx, call.metadata);
}

/** NSM's `networkservice.NetworkService` served by `chain`. */
export function networkServiceOf(chain: Chain, options: ChainEdgeOptions): ServiceRegistration {
  return implement(NetworkServiceService, {
    request: (request, call) => chain.request(chainContextOf(call, options), request),
    close: async (connection, call) => {
      await chain.close(chainContextOf(call, options), connection);
      return create(EmptySchema);
    },
  });
}

export interface ConnectClientOptions {
  /** Deadline of each Request/Close sent (default: the client's default, 15 s). */
  readonly timeoutMs?: number;
}

/**
 * `connect`: the end of a client chain — sends the Request (or Close) to `remote` with the caller's
 * cancellation and the outgoing metadata the elements above wrote.
 */
export function connectClient(
  remote: NetworkServiceClient | ((ctx: ChainContext) => NetworkServiceClient),
  options: ConnectClientOptions = {},
): ChainElement {
  const callOptions = (ctx: ChainContext) => ({
    signal: ctx.signal,
    metadata: outgoingMetadata(ctx),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  // A function: the client is chosen per call (the daemon dials the agent of the selected endpoint).
  const remoteOf = typeof remote === 'function' ? remote : () => remote;
  return {
    name: 'connect',
    request: (ctx, request) => remoteOf(ctx).request(request, callOptions(ctx)),
    close: async (ctx, connection) => {
      await remoteOf(ctx).close(connection, callOptions(ctx));
    },
  };
}

/** A typed NetworkService client (what connect calls). */
export type NetworkServiceClient = ServiceClient<typeof NetworkServiceService>;

function outgoingMetadata(ctx: ChainContext): Metadata {
  const md = new Metadata();
  for (const [key, value] of outgoingMetadataOf(ctx)?.entries() ?? []) md.set(key, value);
  return md;
}
