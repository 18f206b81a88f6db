import type { ChainElement } from '../core/element.js';
import type { Side } from './metadata.js';
import { ConnectionMetadata, metadataKeys } from './metadata.js';

/**
 * The metadata element: gives each connection id a ConnectionMetadata that elements after it use
 * through `metadataOf(ctx, side)`. It is kept across refreshes, dropped on Close, and dropped when
 * the first Request of a connection fails (nothing was established to remember).
 */
export function metadataElement(side: Side): ChainElement {
  const byId = new Map<string, ConnectionMetadata>();
  const key = metadataKeys[side];
  return {
    name: 'metadata',
    // begin serialises events per id, so the map is never touched by two events of one connection at once.
    order: { requires: ['updatepath', 'begin'] },
    async request(ctx, request, next) {
      const id = request.connection?.id ?? '';
      const existing = byId.get(id);
      const md = existing ?? new ConnectionMetadata();
      if (!existing) byId.set(id, md);
      try {
        return await next.request(ctx.with(key, md), request);
      } catch (e: unknown) {
        if (!existing) byId.delete(id);
        throw e;
      }
    },
    async close(ctx, connection, next) {
      const md = byId.get(connection.id) ?? new ConnectionMetadata();
      try {
        await next.close(ctx.with(key, md), connection);
      } finally {
        byId.delete(connection.id);
      }
    },
  };
}

export const metadataServer = (): ChainElement => metadataElement('server');
export const metadataClient = (): ChainElement => metadataElement('client');
