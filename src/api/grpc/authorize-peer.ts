import { ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder } from '@grpc/grpc-js';
import type { ServerInterceptor } from '@grpc/grpc-js';
import { AgentError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { AuthorizePeer } from './credentials.js';
import { toEdgeStatus } from './status.js';
import { peerSpiffeId } from './svid.js';

/**
 * A server interceptor that lets a call reach its handler only when the peer has a verified SVID
 * and `authorize` accepts its SPIFFE ID for the method. It sits on the listener's credentials, so
 * it guards exactly the connections made over that TLS listener, health checks included.
 * A hook that throws refuses the call (fail closed).
 */
export function authorizationInterceptor(
  authorize: AuthorizePeer,
  log: Logger,
  anonymousMethods: ReadonlySet<string> = new Set(),
): ServerInterceptor {
  return (methodDescriptor, call) => {
    const method = methodDescriptor.path;
    // Passed through untouched: the handler itself knows its caller has no identity yet.
    if (anonymousMethods.has(method)) return new ServerInterceptingCall(call);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        decide(call, method, authorize).then(
          () => next(metadata),
          (e: unknown) => {
            const status = toEdgeStatus(e, log, method);
            log.warn(
              { method, peer: call.getPeer(), code: status.code, reason: status.details },
              'call refused',
            );
            call.sendStatus({ ...status, metadata: null });
          },
        );
      })
      .build();
    const responder = new ResponderBuilder().withStart((next) => next(listener)).build();
    return new ServerInterceptingCall(call, responder);
  };
}

async function decide(
  call: Parameters<ServerInterceptor>[1],
  method: string,
  authorize: AuthorizePeer,
): Promise<void> {
  const id = peerSpiffeId(call);
  if (id === undefined) {
    throw new AgentError('UNAUTHENTICATED', `${method} needs a client certificate (an SVID from this mesh)`);
  }
  if (!(await authorize(id, method))) {
    throw new AgentError('PERMISSION_DENIED', `peer ${id} is not allowed to call ${method}`);
  }
}
