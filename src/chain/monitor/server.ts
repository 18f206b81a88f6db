import type { ChainElement } from '../core/element.js';
import type { ConnectionMonitor } from './monitor.js';

/**
 * monitor server (NSM sdk `monitor`): after a successful Request, stores a copy of the returned
 * connection in `monitor` and sends UPDATE to its subscribers; after Close, whatever the rest of the
 * chain did, forgets it and sends DELETE. Stands after begin, so it sees each connection's events in
 * order and the connection as this hop returns it.
 */
export function monitorServer(monitor: ConnectionMonitor): ChainElement {
  return {
    name: 'monitor',
    order: { requires: ['begin'] },
    async request(ctx, request, next) {
      const conn = await next.request(ctx, request);
      monitor.update(conn);
      return conn;
    },
    async close(ctx, connection, next) {
      // An element after this one may rewrite connection.id in place (a server updatepath).
      const id = connection.id;
      try {
        await next.close(ctx, connection);
      } finally {
        monitor.delete(id);
      }
    },
  };
}
