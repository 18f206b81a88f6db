import type { Connection } from '../../api/index.js';
import { describe } from '../../errors/agent-error.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import type { AuthorizeClientOptions } from './options.js';
import type { ConnectionPolicyInput } from './policies.js';
import { DEFAULT_CLIENT_POLICIES, evaluateConnectionPolicies } from './policies.js';

/**
 * authorize client (NSM sdk `authorize.NewClient()`): the connection the server returned must pass
 * the token policies over the whole path, and the server's segment token must be signed by the
 * certificate the server presented (next_token_signed). A refused reply is closed again (we do not
 * keep a connection we do not trust) and the Request fails with the policy's refusal.
 */
export function authorizeClient(options: AuthorizeClientOptions = {}): ChainElement {
  const policies = [...(options.policies ?? DEFAULT_CLIENT_POLICIES), ...(options.extra ?? [])];
  return {
    name: 'authorize',
    order: { requires: ['updatepath', 'updatetoken'] },
    async request(ctx, request, next) {
      const conn = await next.request(ctx, request);
      const refusal = evaluateConnectionPolicies(policies, clientInput(ctx, conn, options));
      if (!refusal) return conn;
      ctx.log.warn({ connId: conn.id, policy: refusal.details.policy }, refusal.message);
      try {
        await next.close(ctx, conn);
      } catch (e: unknown) {
        ctx.log.warn({ connId: conn.id, err: describe(e) }, 'closing the refused connection failed');
      }
      throw refusal;
    },
    close: (ctx, connection, next) => next.close(ctx, connection),
  };
}

function clientInput(
  ctx: ChainContext,
  conn: Connection,
  options: AuthorizeClientOptions,
): ConnectionPolicyInput {
  const serverCertificate = options.serverCertificate?.(ctx);
  return {
    side: 'client',
    connection: conn,
    segments: (conn.path?.pathSegments ?? []).map((s) => ({ token: s.token })),
    index: conn.path?.index ?? 0,
    peerCertificate: serverCertificate,
    peerSpiffeId: undefined,
    serverCertificate,
    nowMs: ctx.clock.now(),
    peerTokenProblem: undefined,
  };
}
