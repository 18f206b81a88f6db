import { clone, create, equals } from '@bufbuild/protobuf';
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from '../../api/index.js';
import type { ChainElement } from '../../chain/index.js';
import { serviceDomain } from './dns-name.js';

export interface DnsContextServerOptions {
  readonly service: string;
  /** Search domain the consumer adds; default `nsm`. */
  readonly domain?: string;
  /** Resolvers for the domain, when the exposing side runs one; default none (the consumer writes a hosts file). */
  readonly serverIps?: readonly string[];
}

/**
 * dnscontext server (NSM sdk `connectioncontext/dnscontext`, the endpoint side): tells the consumer
 * the service is named in the `nsm` domain, so `web.nsm` (or plain `web` via the search domain)
 * resolves to the service address the consumer got in dst_ip_addrs. Without server IPs the consumer
 * resolves the name from its own hosts file. Added once: a refresh that carries it already is left alone.
 */
export function dnsContextServer(options: DnsContextServerOptions): ChainElement {
  const config = create(DNSConfigSchema, {
    dnsServerIps: [...(options.serverIps ?? [])],
    searchDomains: [options.domain ?? serviceDomain],
  });
  return {
    name: 'dnscontext',
    request(ctx, request, next) {
      const conn = request.connection;
      if (conn) {
        conn.context ??= create(ConnectionContextSchema);
        const dns = (conn.context.dnsContext ??= create(DNSContextSchema));
        if (!dns.configs.some((c) => equals(DNSConfigSchema, c, config))) {
          dns.configs.push(clone(DNSConfigSchema, config));
          ctx.log.debug({ connId: conn.id, service: options.service }, 'dnscontext: search domain added');
        }
      }
      return next.request(ctx, request);
    },
    close(ctx, connection, next) {
      return next.close(ctx, connection);
    },
  };
}
