import { AgentError } from '../../errors/agent-error.js';
import type { ChainContext } from '../core/context.js';
import { ContextKey } from '../core/context.js';

/**
 * A typed key into a connection's metadata. Each element declares its own keys in its metadata.ts and
 * offers `store/load/del` helpers around them, so no element reads another's state by accident.
 */
export class MetadataKey<T> {
  declare readonly _type: T;
  constructor(readonly description: string) {}
}

/** Per-connection state that lives from the first successful Request until Close. */
export class ConnectionMetadata {
  readonly #values = new Map<MetadataKey<unknown>, unknown>();

  load<T>(key: MetadataKey<T>): T | undefined {
    return this.#values.get(key) as T | undefined;
  }

  store<T>(key: MetadataKey<T>, value: T): void {
    this.#values.set(key, value);
  }

  loadOrStore<T>(key: MetadataKey<T>, make: () => T): T {
    if (this.#values.has(key)) return this.#values.get(key) as T;
    const v = make();
    this.#values.set(key, v);
    return v;
  }

  delete<T>(key: MetadataKey<T>): T | undefined {
    const v = this.#values.get(key) as T | undefined;
    this.#values.delete(key);
    return v;
  }

  get size(): number {
    return this.#values.size;
  }
}

export type Side = 'server' | 'client';

export const metadataKeys: Readonly<Record<Side, ContextKey<ConnectionMetadata>>> = {
  server: new ContextKey<ConnectionMetadata>('metadata/server'),
  client: new ContextKey<ConnectionMetadata>('metadata/client'),
};

/**
 * The current connection's metadata for one side of the hop. Server and client chains of one process
 * keep separate maps, as in NSM (`metadata.Map(ctx, isClient)`).
 */
export function metadataOf(ctx: ChainContext, side: Side): ConnectionMetadata {
  const m = ctx.get(metadataKeys[side]);
  if (!m) {
    throw new AgentError('CHAIN_INVALID', `no ${side} metadata in context`, {
      hint: `put the metadata element in the ${side} chain before elements that keep per-connection state`,
    });
  }
  return m;
}
