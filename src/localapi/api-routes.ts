import type { ErrorCode } from '../errors/index.js';

/** The local API's routes, shared by the server and the client so the two cannot drift apart. */
export const localApiRoutes = {
  status: { method: 'GET', path: '/v1/status' },
  services: { method: 'GET', path: '/v1/services' },
  connect: { method: 'POST', path: '/v1/connect' },
  disconnect: { method: 'POST', path: '/v1/disconnect' },
  expose: { method: 'POST', path: '/v1/expose' },
  unexpose: { method: 'POST', path: '/v1/unexpose' },
} as const;
export type LocalApiRoute = keyof typeof localApiRoutes;

/** Request bodies above this are refused unread: every real request is a few hundred bytes. */
export const maxRequestBodyBytes = 64 * 1024;

/** The body of every non-2xx answer; the client turns it back into the same AgentError. */
export interface ErrorBody {
  readonly error: {
    readonly code: ErrorCode;
    readonly message: string;
    readonly hint?: string;
    readonly details?: Readonly<Record<string, string | number | boolean>>;
  };
}

const statusByCode: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  CONFIG_INVALID: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 409,
  RESOURCE_EXHAUSTED: 429,
  CANCELLED: 499,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

/** The HTTP status an error code is answered with (curl users and proxies see the right class). */
export function httpStatusFor(code: ErrorCode): number {
  return statusByCode[code] ?? 500;
}
