import type { CallContext } from '../api/grpc/index.js';
import type { AgentError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

/** Throws a policy refusal after logging who was refused and by which policy (never the token). */
export function refuseIf(refusal: AgentError | undefined, ctx: CallContext, log: Logger, name: string): void {
  if (!refusal) return;
  log.warn(
    { method: ctx.method, peer: ctx.peer.spiffeId, name, policy: refusal.details.policy, code: refusal.code },
    'registry call refused',
  );
  throw refusal;
}
