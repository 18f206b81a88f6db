import { create, KernelParam, MechanismClass, MechanismSchema } from '../../../api/index.js';
import type { ChainElement } from '../../../chain/core/index.js';
import { closeWithEntry, offerMechanism, requestWithEntry } from '../entries.js';
import { defaultInterfaceName, kernelType, localEntry } from './common.js';
import type { KernelOptions } from './common.js';

const part = 'kernel-client';

/**
 * The LOCAL `KERNEL` mechanism towards an endpoint on this host: offers KERNEL with an interface
 * name; the endpoint answers with its netns in `inodeURL` (none: it is a host process), and the
 * endpoint's local side is declared from the answer. Nothing is set before next.
 */
export function kernelClient(o: KernelOptions): ChainElement {
  return {
    name: part,
    request(ctx, request, next) {
      const id = request.connection?.id ?? '';
      // No inodeURL: the endpoint answers with its own netns (none for a host process).
      const offer = create(MechanismSchema, {
        cls: MechanismClass.LOCAL,
        type: kernelType,
        parameters: { [KernelParam.INTERFACE_NAME]: defaultInterfaceName(id) },
      });
      offerMechanism(request, offer);
      return requestWithEntry({
        forwarder: o.forwarder,
        part,
        ctx,
        request,
        next,
        after: (conn) =>
          conn.mechanism?.type === kernelType ? localEntry(conn.mechanism, conn, 'endpoint') : undefined,
      });
    },
    close(ctx, connection, next) {
      return closeWithEntry(o.forwarder, part, ctx, connection, next);
    },
  };
}
