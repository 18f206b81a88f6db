import { clone } from '@bufbuild/protobuf';
import { MechanismClass, MechanismSchema } from '../../../api/index.js';
import type { ChainElement } from '../../../chain/core/index.js';
import { closeWithEntry, offeredMechanism, requestWithEntry } from '../entries.js';
import { kernelType, localEntry } from './common.js';
import type { KernelOptions } from './common.js';

const part = 'kernel-server';

/**
 * The LOCAL `KERNEL` mechanism towards a client on this host: selects the client's KERNEL
 * preference and declares its local side — addresses on the WireGuard device for a host process,
 * or a veth into the client's netns with its addresses and routes to the far side. Declared before
 * next from what the request knows (a refresh), again after next from the answer's IP context;
 * undone when anything after it fails.
 */
export function kernelServer(o: KernelOptions): ChainElement {
  return {
    name: part,
    async request(ctx, request, next) {
      const conn = request.connection;
      const offered = offeredMechanism(
        request,
        kernelType,
        (m) => m.cls === '' || m.cls === MechanismClass.LOCAL,
      );
      if (conn === undefined || offered === undefined) return next.request(ctx, request);
      const selected = clone(MechanismSchema, offered);
      conn.mechanism = selected;
      const known = (conn.context?.ipContext?.srcIpAddrs.length ?? 0) > 0;
      const out = await requestWithEntry({
        forwarder: o.forwarder,
        part,
        ctx,
        request,
        next,
        ...(known ? { before: localEntry(selected, conn, 'client') } : {}),
        after: (c) => localEntry(selected, c, 'client'),
      });
      if (out.mechanism?.type !== kernelType) out.mechanism = selected;
      return out;
    },
    close(ctx, connection, next) {
      return closeWithEntry(o.forwarder, part, ctx, connection, next);
    },
  };
}
