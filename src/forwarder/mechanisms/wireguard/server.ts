import { clone } from '@bufbuild/protobuf';
import { AgentError } from '../../../errors/index.js';
import {
  MechanismSchema,
  readIp,
  readMtu,
  readPort,
  readWireguardKey,
  DefaultPort,
  WireguardParam,
} from '../../../api/index.js';
import type { Mechanism } from '../../../api/index.js';
import type { ChainElement } from '../../../chain/core/index.js';
import type { TunnelEntry } from '../../desired-state.js';
import { closeWithEntry, farPrefixes, offeredMechanism, requestWithEntry } from '../entries.js';
import { carriesIp, endpointOf, wireguardType } from './common.js';
import type { WireguardOptions } from './common.js';

const part = 'wireguard-server';

/**
 * The answering side of the REMOTE `WIREGUARD` mechanism (the endpoint's host): takes the client's
 * offer (`src_public_key`, `src_ip`, `src_port`, MTU), answers with this host's `dst_ip`,
 * `dst_port`, `dst_public_key`, and declares the peer with the client's addresses as allowed IPs.
 * Requests without a WIREGUARD mechanism, or with a non-IP payload, pass through untouched.
 */
export function wireguardServer(o: WireguardOptions): ChainElement {
  return {
    name: part,
    async request(ctx, request, next) {
      const conn = request.connection;
      const offered = offeredMechanism(request, wireguardType);
      if (conn === undefined || offered === undefined || !carriesIp(conn)) return next.request(ctx, request);
      const peerKey = required(
        readWireguardKey(offered, WireguardParam.SRC_PUBLIC_KEY),
        WireguardParam.SRC_PUBLIC_KEY,
      );
      const srcIp = required(readIp(offered, WireguardParam.SRC_IP), WireguardParam.SRC_IP);
      const srcPort = readPort(offered, WireguardParam.SRC_PORT) ?? DefaultPort.WIREGUARD;
      const selected = answer(offered, o);
      conn.mechanism = selected;
      const entry = (prefixes: string[]): TunnelEntry => ({
        kind: 'tunnel',
        peerPublicKey: peerKey,
        endpoint: endpointOf(srcIp, srcPort),
        ...(o.persistentKeepalive === undefined ? {} : { persistentKeepalive: o.persistentKeepalive }),
        remotePrefixes: prefixes,
      });
      // A refresh knows the far side already and keeps the peer as it is while the rest runs; a new
      // connection learns it from the answer (the client sends nothing before it has that answer),
      // so setting a peer with no allowed IPs first would only cost an extra apply.
      const known = farPrefixes(conn.context?.ipContext, 'endpoint');
      const out = await requestWithEntry({
        forwarder: o.forwarder,
        part,
        ctx,
        request,
        next,
        ...(known.length > 0 ? { before: entry(known) } : {}),
        after: (c) => entry(farPrefixes(c.context?.ipContext, 'endpoint')),
      });
      if (out.mechanism?.type !== wireguardType) out.mechanism = selected;
      return out;
    },
    close(ctx, connection, next) {
      return closeWithEntry(o.forwarder, part, ctx, connection, next);
    },
  };
}

function answer(offered: Mechanism, o: WireguardOptions): Mechanism {
  const m = clone(MechanismSchema, offered);
  m.parameters[WireguardParam.DST_IP] = o.tunnelIp;
  m.parameters[WireguardParam.DST_PORT] = String(o.listenPort);
  m.parameters[WireguardParam.DST_PUBLIC_KEY] = o.publicKey;
  const theirs = readMtu(offered);
  const mtu = theirs === undefined ? o.mtu : o.mtu === undefined ? theirs : Math.min(theirs, o.mtu);
  if (mtu !== undefined) m.parameters[WireguardParam.MTU] = String(mtu);
  return m;
}

function required<T>(v: T | undefined, key: string): T {
  if (v === undefined) {
    throw new AgentError('INVALID_ARGUMENT', `WIREGUARD mechanism: parameter ${key} is missing`, {
      hint: 'the requesting forwarder must offer src_ip, src_port and src_public_key',
      details: { mechanism: 'WIREGUARD', parameter: key },
    });
  }
  return v;
}
