import type { Connection } from '../../api/index.js';
import { clientTokenProblem, readClientToken } from '../../api/token/index.js';
import type { ChainContext } from '../core/context.js';
import { incomingMetadataOf } from '../core/call-metadata.js';
import type { ChainElement } from '../core/element.js';
import type { AuthorizeServerOptions } from './options.js';
import type { ConnectionPolicyInput } from './policies.js';
import { DEFAULT_SERVER_POLICIES, evaluateConnectionPolicies } from './policies.js';

/**
 * authorize server (NSM sdk `authorize.NewServer()`): before the rest of the chain runs, the left
 * side of the path (segments 0..index) must pass the token policies — tokens decode, none expired,
 * each addressed to the next hop, the caller's signed with the key of the certificate it connected
 * with — and then the extra policies (service_allowed). A refusal fails the Request with
 * PERMISSION_DENIED (UNAUTHENTICATED when the caller's token is missing or expired).
 *
 * Close is not checked: begin closes the connection it returned, whatever the caller sends, and a
 * connection whose tokens ran out must still be closable.
 */
export function authorizeServer(options: AuthorizeServerOptions = {}): ChainElement {
  const policies = [...(options.policies ?? DEFAULT_SERVER_POLICIES), ...(options.extra ?? [])];
  return {
    name: 'authorize',
    order: { requires: ['updatepath', 'updatetoken'] },
    request(ctx, request, next) {
      const conn = request.connection;
      if (conn) {
        const input = serverInput(ctx, conn);
        const refusal = evaluateConnectionPolicies(policies, input);
        if (refusal) {
          ctx.log.warn(
            { connId: conn.id, peer: ctx.peer?.spiffeId, policy: refusal.details.policy },
            refusal.message,
          );
          return Promise.reject(refusal);
        }
      }
      return next.request(ctx, request);
    },
    close: (ctx, connection, next) => next.close(ctx, connection),
  };
}

function serverInput(ctx: ChainContext, conn: Connection): ConnectionPolicyInput {
  const index = conn.path?.index ?? 0;
  const segments = (conn.path?.pathSegments ?? []).slice(0, index + 1).map((s) => ({ token: s.token }));
  const metadata = incomingMetadataOf(ctx);
  const peerTokenProblem = clientTokenProblem(
    metadata ? readClientToken(metadata) : ({ kind: 'missing' } as const),
  );
  return {
    side: 'server',
    connection: conn,
    segments,
    index,
    peerCertificate: ctx.peer?.certificate,
    peerSpiffeId: ctx.peer?.spiffeId,
    serverCertificate: undefined,
    nowMs: ctx.clock.now(),
    peerTokenProblem,
  };
}
