import { create } from '@bufbuild/protobuf';
import { ConnectionSchema } from '../../api/index.js';
import type { ChainElement } from '../core/element.js';
import { restorePath, updatePath } from './common.js';

/**
 * updatepath server: makes this hop's segment the current one before the rest of the chain runs,
 * and gives the caller back its own id and index on return (nsm-api.md §4.3).
 */
export function updatePathServer(name: string): ChainElement {
  return {
    name: 'updatepath',
    async request(ctx, request, next) {
      request.connection ??= create(ConnectionSchema);
      const index = updatePath(request.connection, name, () => ctx.random.uuid());
      const conn = await next.request(ctx, request);
      restorePath(conn, index);
      return conn;
    },
    async close(ctx, connection, next) {
      updatePath(connection, name, () => ctx.random.uuid());
      await next.close(ctx, connection);
    },
  };
}
