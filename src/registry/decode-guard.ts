import { status as GrpcStatus } from '@grpc/grpc-js';
import type { MethodDefinition, Metadata, UntypedServiceImplementation } from '@grpc/grpc-js';
import { decodeMessage } from '../api/index.js';
import type { ServiceRegistration } from '../api/grpc/index.js';
import { AgentError, describe } from '../errors/index.js';

/**
 * grpc-js answers a request that does not decode with INTERNAL ("Error deserializing request"),
 * which reads like our bug. Here the decoder never throws: it hands the handler a marker, and the
 * call is answered INVALID_ARGUMENT with what was wrong (issue B §5, "malformed protobuf").
 * Only for unary and server-streaming methods (the registry's); others pass through unchanged.
 * TODO(api/grpc owner): this belongs in `implement`; move it there and delete this file.
 */
class Undecodable {
  constructor(readonly error: AgentError) {}
}

interface GuardedCall {
  readonly request?: unknown;
  readonly metadata: Metadata;
  emit(event: 'error', status: { code: number; details: string }): boolean;
}

type LooseHandler = (call: GuardedCall, ...rest: unknown[]) => unknown;
type Callback = (error: { code: number; details: string }) => void;

export function withDecodeGuard(registration: ServiceRegistration): ServiceRegistration {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  const streaming = new Set<string>();
  for (const method of registration.service.methods) {
    const m = registration.definition[method.localName];
    if (!m) continue;
    if (method.methodKind === 'server_streaming') streaming.add(method.localName);
    if (method.methodKind !== 'unary' && method.methodKind !== 'server_streaming') {
      definition[method.localName] = m;
      continue;
    }
    definition[method.localName] = {
      ...m,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decodeMessage(method.input, bytes);
        } catch (e: unknown) {
          return new Undecodable(
            AgentError.is(e)
              ? e
              : new AgentError('INVALID_ARGUMENT', `cannot decode the request: ${describe(e)}`),
          );
        }
      },
    };
  }
  return {
    ...registration,
    definition,
    handlers(log) {
      const inner = registration.handlers(log);
      const out: UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(inner)) {
        const fn = handler as unknown as LooseHandler;
        const wrapped: LooseHandler = (call, ...rest) => {
          if (!(call.request instanceof Undecodable)) return fn(call, ...rest);
          const status = { code: GrpcStatus.INVALID_ARGUMENT, details: call.request.error.message };
          log.debug({ method: name, reason: status.details }, 'request does not decode');
          if (streaming.has(name)) call.emit('error', status);
          else (rest[0] as Callback)(status);
          return undefined;
        };
        out[name] = wrapped;
      }
      return out;
    },
  };
}
