import { status as GrpcStatus } from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import type { ErrorCode } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';

/**
 * The two translations at the gRPC edge: AgentError → status on the server side, status →
 * AgentError on the client side. Nothing else in the agent sees gRPC status codes.
 */
const toGrpc: Readonly<Record<ErrorCode, GrpcStatus>> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  CANCELLED: GrpcStatus.CANCELLED,
  RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  // A peer sent something our config validation rejects: the caller's input was wrong.
  CONFIG_INVALID: GrpcStatus.INVALID_ARGUMENT,
  // These are our own failures; their messages may name host commands, so they stay in our log.
  EXEC_FAILED: GrpcStatus.INTERNAL,
  CHAIN_INVALID: GrpcStatus.INTERNAL,
  INTERNAL: GrpcStatus.INTERNAL,
};

/** The gRPC status for an agent error code. */
export function grpcStatusFor(code: ErrorCode): GrpcStatus {
  return toGrpc[code];
}

const fromGrpc: Readonly<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.OK]: 'INTERNAL', // an error carrying OK is a bug somewhere; never silently succeed
  [GrpcStatus.CANCELLED]: 'CANCELLED',
  [GrpcStatus.UNKNOWN]: 'INTERNAL',
  [GrpcStatus.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [GrpcStatus.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [GrpcStatus.NOT_FOUND]: 'NOT_FOUND',
  [GrpcStatus.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [GrpcStatus.PERMISSION_DENIED]: 'PERMISSION_DENIED',
  [GrpcStatus.RESOURCE_EXHAUSTED]: 'RESOURCE_EXHAUSTED',
  [GrpcStatus.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  // ABORTED means "retry at a higher level"; UNAVAILABLE is the retryable code we have.
  [GrpcStatus.ABORTED]: 'UNAVAILABLE',
  [GrpcStatus.OUT_OF_RANGE]: 'INVALID_ARGUMENT',
  // ErrorCode has no UNIMPLEMENTED; details.grpcStatus keeps the exact code for callers that care.
  [GrpcStatus.UNIMPLEMENTED]: 'INTERNAL',
  [GrpcStatus.INTERNAL]: 'INTERNAL',
  [GrpcStatus.UNAVAILABLE]: 'UNAVAILABLE',
  [GrpcStatus.DATA_LOSS]: 'INTERNAL',
  [GrpcStatus.UNAUTHENTICATED]: 'UNAUTHENTICATED',
};

/** What a server sends for a failed call. */
export interface EdgeStatus {
  readonly code: GrpcStatus;
  readonly details: string;
}

const GENERIC_INTERNAL = 'internal error in the server; its log has the details';

/**
 * Turns whatever a handler threw into the status the client sees. AgentErrors keep their code
 * and message; anything else is a bug, so it is logged in full and the client gets a generic
 * INTERNAL (stack traces and host details stay on this side).
 */
export function toEdgeStatus(e: unknown, log: Logger, method: string): EdgeStatus {
  if (e instanceof AgentError) {
    const code = toGrpc[e.code];
    if (code !== GrpcStatus.INTERNAL) {
      log.debug({ method, code: e.code, err: e }, 'call failed');
      return { code, details: e.message };
    }
    log.error({ method, code: e.code, err: e }, 'call failed with an internal error');
    return { code, details: GENERIC_INTERNAL };
  }
  log.error({ method, err: e }, 'handler threw a non-AgentError; answering INTERNAL');
  return { code: GrpcStatus.INTERNAL, details: GENERIC_INTERNAL };
}

function isStatusError(e: unknown): e is Error & { code: number; details?: string } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'number';
}

/**
 * Turns a grpc-js client error into an AgentError. The message is the server's status message
 * unchanged, so an error relayed across several hops does not grow a prefix per hop; the method,
 * target and exact gRPC code go into `details`.
 */
export function fromCallError(e: unknown, method: string, target: string): AgentError {
  if (e instanceof AgentError) return e;
  if (isStatusError(e)) {
    // Codes arrive as plain numbers from the wire; a peer may send one we have no name for.
    const code = (fromGrpc as Readonly<Partial<Record<number, ErrorCode>>>)[e.code];
    const grpcStatus = (GrpcStatus as unknown as Readonly<Partial<Record<number, string>>>)[e.code];
    return new AgentError(code ?? 'INTERNAL', e.details ?? e.message, {
      cause: e,
      details: { method, target, grpcCode: e.code, grpcStatus: grpcStatus ?? 'UNKNOWN_CODE' },
    });
  }
  return new AgentError('INTERNAL', `call ${method} to ${target} failed: ${describe(e)}`, {
    cause: e,
    details: { method, target },
  });
}
