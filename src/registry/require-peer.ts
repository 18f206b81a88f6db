import type { CallContext } from '../api/grpc/index.js';
import { AgentError } from '../errors/index.js';

/**
 * Every registry call needs a verified client SVID, as upstream's mTLS-only registry gives. The
 * control server's listener makes client certificates optional (hosts enrol without one), so this
 * is checked here too rather than left to the TLS settings of whoever serves the registry.
 */
export function requirePeer(ctx: CallContext, required: boolean): void {
  if (!required || ctx.peer.spiffeId !== undefined) return;
  throw new AgentError('UNAUTHENTICATED', `${ctx.method} needs a client certificate: an SVID of this mesh`, {
    hint: 'connect with mTLS using this host’s SVID (enrol first if it has none)',
  });
}
