import { AgentError } from '../../../errors/index.js';
import {
  DefaultPort,
  readIp,
  readPort,
  readWireguardKey,
  wireguardMechanism,
  WireguardParam,
} from '../../../api/index.js';
import type { ChainElement } from '../../../chain/core/index.js';
import type { TunnelEntry } from '../../desired-state.js';
import { closeWithEntry, offerMechanism, farPrefixes, requestWithEntry } from '../entries.js';
import { carriesIp, endpointOf, wireguardType } from './common.js';
import type { WireguardOptions } from './common.js';

const part = 'wireguard-client';

/**
 * The offering side of the REMOTE `WIREGUARD` mechanism (the client's host, calling the remote
 * agent): offers `src_ip`, `src_port`, `src_public_key` (and MTU), and when the answer selects
 * WIREGUARD declares the peer at `dst_ip:dst_port` with key `dst_public_key`, allowed IPs the far
 * side's addresses and routes. It sets nothing before next, so a failing next leaves nothing.
 */
export function wireguardClient(o: WireguardOptions): ChainElement {
  return {
    name: part,
    request(ctx, request, next) {
      if (!carriesIp(request.connection)) return next.request(ctx, request);
      const offer = wireguardMechanism({
        srcIp: o.tunnelIp,
        srcPort: o.listenPort,
        srcPublicKey: o.publicKey,
        ...(o.mtu === undefined ? {} : { mtu: o.mtu }),
      });
      offerMechanism(request, offer);
      return requestWithEntry({
        forwarder: o.forwarder,
        part,
        ctx,
        request,
        next,
        after: (conn): TunnelEntry | undefined => {
          const m = conn.mechanism;
          if (m?.type !== wireguardType) return undefined;
          const key = readWireguardKey(m, WireguardParam.DST_PUBLIC_KEY);
          const ip = readIp(m, WireguardParam.DST_IP);
          if (key === undefined || ip === undefined) {
            throw new AgentError('INVALID_ARGUMENT', 'WIREGUARD answer lacks dst_public_key or dst_ip', {
              hint: 'the remote forwarder must fill dst_ip, dst_port and dst_public_key; check its NSM version',
            });
          }
          return {
            kind: 'tunnel',
            peerPublicKey: key,
            endpoint: endpointOf(ip, readPort(m, WireguardParam.DST_PORT) ?? DefaultPort.WIREGUARD),
            ...(o.persistentKeepalive === undefined ? {} : { persistentKeepalive: o.persistentKeepalive }),
            remotePrefixes: farPrefixes(conn.context?.ipContext, 'client'),
          };
        },
      });
    },
    close(ctx, connection, next) {
      return closeWithEntry(o.forwarder, part, ctx, connection, next);
    },
  };
}
