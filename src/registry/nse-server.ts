import { NetworkServiceEndpointRegistryService, timestampToMs, toTimestamp } from '../api/index.js';
import type { NetworkServiceEndpoint, NetworkServiceEndpointSchema } from '../api/index.js';
import { implement } from '../api/grpc/index.js';
import type { ServiceRegistration } from '../api/grpc/index.js';
import { AgentError, describe } from '../errors/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import type { Store } from '../store/index.js';
import { withDecodeGuard } from './decode-guard.js';
import { streamFind } from './find-stream.js';
import { unregisterRecord } from './unregister-record.js';
import { matchNetworkServiceEndpoint } from './match.js';
import type { Ownership } from './ownership.js';
import type { RecordSet } from './record-set.js';
import type { RecordView } from './record-view.js';
import { beginRegistryCall } from './registry-call.js';
import { refuseIf } from './refuse-if.js';
import { OMIT_RENEWALS_METADATA_KEY } from './renewals.js';
import { requirePeer } from './require-peer.js';
import type { RegistryCallDeps } from './registry-call.js';
import { checkNetworkServiceEndpoint } from './validate.js';
import type { RegistryLimits } from './validate.js';

export interface NseServerDeps extends RegistryCallDeps {
  readonly store: Store;
  readonly records: RecordSet<typeof NetworkServiceEndpointSchema>;
  readonly view: RecordView<typeof NetworkServiceEndpointSchema>;
  readonly maxWatchBacklog: number;
  readonly requirePeerIdentity: boolean;
  readonly ownership: Ownership;
  readonly clock: Clock;
  readonly log: Logger;
  readonly defaultExpirationMs: number;
  readonly limits: RegistryLimits;
}

const RESOURCE = 'network service endpoint';

/**
 * `registry.NetworkServiceEndpointRegistry` with registry-memory's chain semantics
 * (docs/nsm-api.md §4.9): grpcmetadata → updatepath → authorize → setregistrationtime → expire →
 * store. Expiry is a store lease, so it deletes the record (and tells every watcher on every
 * server sharing the store) without a timer in this process.
 */
export function nseRegistryServer(deps: NseServerDeps): ServiceRegistration {
  const log = deps.log;
  return withDecodeGuard(
    implement(NetworkServiceEndpointRegistryService, {
      async register(nse, ctx) {
        requirePeer(ctx, deps.requirePeerIdentity);
        checkNetworkServiceEndpoint(nse, deps.limits);
        const call = beginRegistryCall(ctx, deps);
        const owner = await deps.ownership.owner(nse.name);
        refuseIf(call.authorize('Register', RESOURCE, nse.name, owner), ctx, log, nse.name);
        nse.pathIds = call.pathIds(nse.pathIds);

        const now = deps.clock.now();
        const expiresAtMs = chooseExpiration(nse, now, [
          call.ownToken.expiresAtMs,
          call.peerToken?.expiresAtMs,
          now + deps.defaultExpirationMs,
        ]);
        const stored = await deps.records.getWithLease(nse.name);
        const existing = stored?.record;
        nse.initialRegistrationTime =
          existing?.initialRegistrationTime ?? nse.initialRegistrationTime ?? toTimestamp(now);

        if (owner === undefined) {
          const claimant = nse.pathIds[0] ?? '';
          const winner = await deps.ownership.claim(nse.name, claimant);
          // Another registrant claimed the name between our check and our claim (maybe on another server).
          if (winner !== claimant)
            refuseIf(call.authorize('Register', RESOURCE, nse.name, winner), ctx, log, nse.name);
        }
        const lease = await deps.store.grantLease(Math.max(1, Math.ceil(expiresAtMs - now)));
        await deps.view.caughtUp(await deps.records.put(nse.name, nse, lease));
        // The key moved to the new lease; the old one would only linger in the store until it ran out.
        if (stored && stored.lease !== 0) {
          deps.store.revokeLease(stored.lease).catch((e: unknown) => {
            log.debug(
              { nse: nse.name, lease: stored.lease, err: describe(e) },
              'could not revoke the previous lease',
            );
          });
        }
        call.sendPathHeader();
        log[existing ? 'debug' : 'info'](
          {
            nse: nse.name,
            peer: ctx.peer.spiffeId,
            url: nse.url,
            expiresAt: new Date(expiresAtMs).toISOString(),
          },
          existing ? 'network service endpoint refreshed' : 'network service endpoint registered',
        );
        return nse;
      },

      async find(query, stream, ctx) {
        requirePeer(ctx, deps.requirePeerIdentity);
        const template = query.networkServiceEndpoint;
        await streamFind(deps.view, {
          watch: query.watch,
          exactName: template?.name === '' ? undefined : template?.name,
          matches: (r) => matchNetworkServiceEndpoint(template, r),
          send: (r, deleted) => stream.send({ networkServiceEndpoint: r, deleted }),
          signal: ctx.signal,
          maxBacklog: deps.maxWatchBacklog,
          omitRenewals: ctx.metadata.get(OMIT_RENEWALS_METADATA_KEY)[0] === '1',
        });
      },

      async unregister(nse, ctx) {
        const deleted = await unregisterRecord(deps, ctx, log, {
          resource: RESOURCE,
          name: nse.name,
          notFoundHint: 'check the name; a registration that expired and was never renewed is already gone',
        });
        log.info(
          { nse: nse.name, peer: ctx.peer.spiffeId, wasRegistered: deleted },
          'network service endpoint unregistered',
        );
        return {};
      },
    }),
  );
}

/**
 * sdk `expire`: min(own token expiry, caller token expiry, now + default); a client asking for
 * less keeps its time, a client asking for more is lowered. Sets nse.expirationTime; returns it in ms.
 */
function chooseExpiration(
  nse: NetworkServiceEndpoint,
  now: number,
  caps: readonly (number | undefined)[],
): number {
  let chosen = Math.min(...caps.filter((c): c is number => c !== undefined));
  const requested = nse.expirationTime ? timestampToMs(nse.expirationTime) : undefined;
  if (requested !== undefined && requested <= now) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `expiration_time ${new Date(requested).toISOString()} is not in the future`,
      {
        hint: 'leave expiration_time unset and the registry chooses it, or resend the value of the last response before it passes',
      },
    );
  }
  if (requested === undefined || chosen < requested) nse.expirationTime = toTimestamp(chosen);
  else chosen = requested;
  if (chosen <= now) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      'the registration would expire at once: nsm-client-token-expires is not in the future',
      {
        hint: 'mint a fresh token for the call',
      },
    );
  }
  return chosen;
}
