/**
 * The one error type of nsm-agent. Every failure that crosses a module boundary is an AgentError:
 * a machine-readable code, a message a person can act on (what happened and what to do next), and
 * the cause it wraps. It becomes a gRPC status only at a server edge, and an exit code only in cli/main.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'FAILED_PRECONDITION'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'CANCELLED'
  | 'RESOURCE_EXHAUSTED'
  | 'CONFIG_INVALID'
  | 'EXEC_FAILED'
  | 'CHAIN_INVALID'
  | 'INTERNAL';

export interface AgentErrorOptions {
  /** What the user or operator should do next; appended to the message. */
  readonly hint?: string;
  readonly cause?: unknown;
  /** Structured details safe to log (never secrets). */
  readonly details?: Readonly<Record<string, string | number | boolean>>;
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, string | number | boolean>>;

  constructor(code: ErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(options.hint ? `${message}; ${options.hint}` : message, { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** True when `e` is an AgentError, optionally with the given code. */
  static is(e: unknown, code?: ErrorCode): e is AgentError {
    return e instanceof AgentError && (code === undefined || e.code === code);
  }

  /** Wraps any thrown value; an AgentError passes through unchanged. */
  static wrap(e: unknown, code: ErrorCode, message: string, hint?: string): AgentError {
    if (e instanceof AgentError) return e;
    return new AgentError(
      code,
      `${message}: ${describe(e)}`,
      hint === undefined ? { cause: e } : { cause: e, hint },
    );
  }
}

/** A short, single-line description of a thrown value for messages. */
export function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
