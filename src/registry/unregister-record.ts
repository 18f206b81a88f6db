import type { DescMessage } from '@bufbuild/protobuf';
import type { CallContext } from '../api/grpc/index.js';
import { AgentError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Ownership } from './ownership.js';
import type { RecordSet } from './record-set.js';
import type { RecordView } from './record-view.js';
import { beginRegistryCall } from './registry-call.js';
import type { RegistryCallDeps } from './registry-call.js';
import type { RegistryPolicyInput } from './registry-policy.js';
import { refuseIf } from './refuse-if.js';
import { requirePeer } from './require-peer.js';
import { checkName } from './validate.js';
import type { RegistryLimits } from './validate.js';

export interface UnregisterDeps<D extends DescMessage> extends RegistryCallDeps {
  readonly records: RecordSet<D>;
  readonly view: RecordView<D>;
  readonly ownership: Ownership;
  readonly requirePeerIdentity: boolean;
  readonly limits: RegistryLimits;
}

/**
 * Unregister, the same for NS and NSE: authorize against the name's owner, delete the record,
 * release the name, wait until this server's view has seen the delete, send the path header.
 * NOT_FOUND only when there was neither a record nor an owner. Resolves whether a record existed.
 */
export async function unregisterRecord<D extends DescMessage>(
  deps: UnregisterDeps<D>,
  ctx: CallContext,
  log: Logger,
  what: {
    readonly resource: RegistryPolicyInput['resource'];
    readonly name: string;
    readonly notFoundHint: string;
  },
): Promise<boolean> {
  const { resource, name } = what;
  requirePeer(ctx, deps.requirePeerIdentity);
  checkName(resource, name, deps.limits);
  const call = beginRegistryCall(ctx, deps);
  const owner = await deps.ownership.owner(name);
  refuseIf(call.authorize('Unregister', resource, name, owner), ctx, log, name);
  const { deleted, revision } = await deps.records.delete(name);
  if (!deleted && owner === undefined) {
    throw new AgentError('NOT_FOUND', `no ${resource} "${name}" is registered; nothing to unregister`, {
      hint: what.notFoundHint,
    });
  }
  if (owner !== undefined) await deps.ownership.release(name);
  await deps.view.caughtUp(revision);
  call.sendPathHeader();
  return deleted;
}
