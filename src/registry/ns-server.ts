import { NetworkServiceRegistryService, Payload } from '../api/index.js';
import type { NetworkServiceSchema } from '../api/index.js';
import { implement } from '../api/grpc/index.js';
import type { ServiceRegistration } from '../api/grpc/index.js';
import type { Logger } from '../log/index.js';
import { withDecodeGuard } from './decode-guard.js';
import { streamFind } from './find-stream.js';
import { unregisterRecord } from './unregister-record.js';
import { matchNetworkService } from './match.js';
import type { Ownership } from './ownership.js';
import type { RecordSet } from './record-set.js';
import type { RecordView } from './record-view.js';
import { beginRegistryCall } from './registry-call.js';
import type { RegistryCallDeps } from './registry-call.js';
import { refuseIf } from './refuse-if.js';
import { requirePeer } from './require-peer.js';
import { checkNetworkService } from './validate.js';
import type { RegistryLimits } from './validate.js';

export interface NsServerDeps extends RegistryCallDeps {
  readonly records: RecordSet<typeof NetworkServiceSchema>;
  readonly view: RecordView<typeof NetworkServiceSchema>;
  readonly maxWatchBacklog: number;
  readonly requirePeerIdentity: boolean;
  readonly ownership: Ownership;
  readonly log: Logger;
  readonly limits: RegistryLimits;
}

const RESOURCE = 'network service';

/**
 * `registry.NetworkServiceRegistry` as registry-memory's chain: grpcmetadata → updatepath →
 * authorize → setpayload (empty → IP) → store. Network services do not expire.
 */
export function nsRegistryServer(deps: NsServerDeps): ServiceRegistration {
  const log = deps.log;
  return withDecodeGuard(
    implement(NetworkServiceRegistryService, {
      async register(ns, ctx) {
        requirePeer(ctx, deps.requirePeerIdentity);
        checkNetworkService(ns, deps.limits);
        const call = beginRegistryCall(ctx, deps);
        const owner = await deps.ownership.owner(ns.name);
        refuseIf(call.authorize('Register', RESOURCE, ns.name, owner), ctx, log, ns.name);
        ns.pathIds = call.pathIds(ns.pathIds);
        if (ns.payload === '') ns.payload = Payload.IP;
        if (owner === undefined) {
          const claimant = ns.pathIds[0] ?? '';
          const winner = await deps.ownership.claim(ns.name, claimant);
          if (winner !== claimant)
            refuseIf(call.authorize('Register', RESOURCE, ns.name, winner), ctx, log, ns.name);
        }
        const existed = (await deps.records.get(ns.name)) !== undefined;
        await deps.view.caughtUp(await deps.records.put(ns.name, ns));
        call.sendPathHeader();
        log[existed ? 'debug' : 'info'](
          { ns: ns.name, peer: ctx.peer.spiffeId, payload: ns.payload },
          existed ? 'network service updated' : 'network service registered',
        );
        return ns;
      },

      async find(query, stream, ctx) {
        requirePeer(ctx, deps.requirePeerIdentity);
        const template = query.networkService;
        await streamFind(deps.view, {
          watch: query.watch,
          exactName: template?.name === '' ? undefined : template?.name,
          matches: (r) => matchNetworkService(template, r),
          send: (r, deleted) => stream.send({ networkService: r, deleted }),
          signal: ctx.signal,
          maxBacklog: deps.maxWatchBacklog,
        });
      },

      async unregister(ns, ctx) {
        await unregisterRecord(deps, ctx, log, {
          resource: RESOURCE,
          name: ns.name,
          notFoundHint: 'check the name',
        });
        log.info({ ns: ns.name, peer: ctx.peer.spiffeId }, 'network service unregistered');
        return {};
      },
    }),
  );
}
