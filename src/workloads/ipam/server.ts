import { create } from '@bufbuild/protobuf';
import type { Connection, IPContext, Route } from '../../api/index.js';
import { ConnectionContextSchema, IPContextSchema, RouteSchema } from '../../api/index.js';
import type { ChainElement } from '../../chain/index.js';
import type { ServiceIpam } from './service-ipam.js';

/**
 * ipam server (NSM sdk `ipam/point2pointipam`, for one exposed service): gives the connection its
 * client address (src = the consumer's side) and the service address (dst = this side), and the
 * routes that lead each side to the other, so the consumer reaches the service at its stable address.
 *
 *   src_ip_addrs = [client/32]   dst_ip_addrs = [service/32]
 *   src_routes   = [service/32]  dst_routes   = [client/32]
 *
 * Entries of other IPAMs on the path are kept; stale entries in this service's range are replaced.
 * The connection key is the id of the client's own path segment (segment 0): it stays the same
 * across refreshes and across restarts of either agent, unlike this hop's connection id.
 * Addresses are released after Close, and when the rest of the chain refuses a new connection.
 */
export function ipamServer(ipam: ServiceIpam): ChainElement {
  return {
    name: 'ipam',
    // Who is refused by authorize gets no address; updatepath/begin give the connection its shape first.
    order: { after: ['updatepath', 'begin', 'authorize'] },
    async request(ctx, request, next) {
      const conn = request.connection;
      if (!conn) return next.request(ctx, request);
      const key = connectionKey(conn);
      const previous = ipam.addressOf(key);
      conn.context ??= create(ConnectionContextSchema);
      const ip = (conn.context.ipContext ??= create(IPContextSchema));
      const client = ipam.allocate(key, ip.srcIpAddrs);
      if (client !== previous) {
        ctx.log.debug(
          { connId: conn.id, service: ipam.service, address: client, previous },
          'ipam: client address assigned',
        );
      }
      fill(ipam, ip, client);
      try {
        return await next.request(ctx, request);
      } catch (e: unknown) {
        // Undo only our part: a new connection gives its address back; a refresh that moved to a
        // requested address goes back to the one it had.
        if (previous === undefined) ipam.release(key);
        else if (previous !== client) ipam.allocate(key, [previous]);
        throw e;
      }
    },
    async close(ctx, connection, next) {
      try {
        await next.close(ctx, connection);
      } finally {
        ipam.release(connectionKey(connection));
      }
    },
  };
}

/** The client's segment id; a connection without a path (not through updatepath) falls back to its id. */
function connectionKey(conn: Connection): string {
  const first = conn.path?.pathSegments[0]?.id;
  return first !== undefined && first !== '' ? first : conn.id;
}

function fill(ipam: ServiceIpam, ip: IPContext, client: string): void {
  const ours = (a: string): boolean => ipam.contains(a);
  ip.srcIpAddrs = withOnly(ip.srcIpAddrs, ours, client);
  ip.dstIpAddrs = withOnly(ip.dstIpAddrs, ours, ipam.serviceAddress);
  ip.srcRoutes = withRoute(ip.srcRoutes, ours, ipam.serviceAddress);
  ip.dstRoutes = withRoute(ip.dstRoutes, ours, client);
}

/** `list` without entries of our range, then `value`; order of the rest kept. */
function withOnly(list: readonly string[], ours: (a: string) => boolean, value: string): string[] {
  return [...list.filter((a) => !ours(a)), value];
}

function withRoute(routes: readonly Route[], ours: (a: string) => boolean, prefix: string): Route[] {
  const kept = routes.filter((r) => !ours(r.prefix) || r.prefix === prefix);
  return kept.some((r) => r.prefix === prefix) ? kept : [...kept, create(RouteSchema, { prefix })];
}
