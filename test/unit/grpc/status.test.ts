import test from 'ava';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { fromCallError, grpcStatusFor, toEdgeStatus } from '../../../src/api/grpc/index.js';
import { AgentError } from '../../../src/errors/index.js';
import type { ErrorCode } from '../../../src/errors/index.js';
import { silentLogger } from '../../../src/log/index.js';

test('every agent error code maps to the gRPC status the brief names', (t) => {
  const expected: Record<ErrorCode, GrpcStatus> = {
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
    CONFIG_INVALID: GrpcStatus.INVALID_ARGUMENT,
    EXEC_FAILED: GrpcStatus.INTERNAL,
    CHAIN_INVALID: GrpcStatus.INTERNAL,
    INTERNAL: GrpcStatus.INTERNAL,
  };
  for (const [code, status] of Object.entries(expected) as [ErrorCode, GrpcStatus][]) {
    t.is(grpcStatusFor(code), status, code);
    const edge = toEdgeStatus(new AgentError(code, 'detail'), silentLogger(), '/x.Y/Z');
    t.is(edge.code, status, code);
    t.is(edge.details === 'detail', status !== GrpcStatus.INTERNAL, code);
  }
  t.is(toEdgeStatus('a string', silentLogger(), '/x.Y/Z').code, GrpcStatus.INTERNAL);
});

test('client errors become AgentErrors that keep the exact gRPC code in details', (t) => {
  const err = (code: number, details: string): Error =>
    Object.assign(new Error(`${code} ${details}`), { code, details });
  const unimplemented = fromCallError(err(GrpcStatus.UNIMPLEMENTED, 'no such method'), '/a.B/C', 'unix:///s');
  t.is(unimplemented.code, 'INTERNAL');
  t.is(unimplemented.message, 'no such method');
  t.deepEqual(unimplemented.details, {
    method: '/a.B/C',
    target: 'unix:///s',
    grpcCode: GrpcStatus.UNIMPLEMENTED,
    grpcStatus: 'UNIMPLEMENTED',
  });
  t.is(fromCallError(err(GrpcStatus.ABORTED, 'x'), '/a.B/C', 't').code, 'UNAVAILABLE');
  t.is(fromCallError(err(99, 'future code'), '/a.B/C', 't').details.grpcStatus, 'UNKNOWN_CODE');
  t.is(fromCallError(new TypeError('boom'), '/a.B/C', 't').code, 'INTERNAL');
});
