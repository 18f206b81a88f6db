import type { ReadableMetadata, WritableMetadata } from '../../api/token/index.js';
import type { ChainContext } from './context.js';
import { ContextKey } from './context.js';

/**
 * gRPC metadata as chain elements see it, without importing gRPC: the server edge puts the call's
 * metadata into the context (`withIncomingMetadata`), elements read it (updatetoken: the caller's
 * `nsm-client-token`); on the client side elements write what the next call must carry into an
 * OutgoingMetadata, and the element that makes the call copies `entries()` into its grpc-js Metadata.
 */
export class OutgoingMetadata implements WritableMetadata {
  readonly #values = new Map<string, string>();

  /** Replaces any earlier value of `key`, as grpc-js `Metadata.set` does. */
  set(key: string, value: string): void {
    this.#values.set(key.toLowerCase(), value);
  }

  get(key: string): readonly string[] {
    const v = this.#values.get(key.toLowerCase());
    return v === undefined ? [] : [v];
  }

  entries(): IterableIterator<[string, string]> {
    return this.#values.entries();
  }
}

const incomingKey = new ContextKey<ReadableMetadata>('call/incoming-metadata');
const outgoingKey = new ContextKey<OutgoingMetadata>('call/outgoing-metadata');

/** For the server edge: the context of a call that carried `metadata`. */
export function withIncomingMetadata(ctx: ChainContext, metadata: ReadableMetadata): ChainContext {
  return ctx.with(incomingKey, metadata);
}

/** The metadata of the call being served; undefined for calls that did not come over gRPC. */
export function incomingMetadataOf(ctx: ChainContext): ReadableMetadata | undefined {
  return ctx.get(incomingKey);
}

/** For client elements: a context whose outgoing call will carry `metadata`. */
export function withOutgoingMetadata(ctx: ChainContext, metadata: OutgoingMetadata): ChainContext {
  return ctx.with(outgoingKey, metadata);
}

/** What the outgoing call must carry; the calling element (connect) sends these entries. */
export function outgoingMetadataOf(ctx: ChainContext): OutgoingMetadata | undefined {
  return ctx.get(outgoingKey);
}
