import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { AgentError, describe } from '../errors/index.js';
import type { ErrorCode } from '../errors/index.js';
import type {
  ConnectRequest,
  ConnectionRow,
  DisconnectRequest,
  ExposeRequest,
  ExposeRow,
  ServicesReport,
  StatusReport,
  UnexposeRequest,
} from './agent-control.js';
import { localApiRoutes } from './api-routes.js';
import type { ErrorBody, LocalApiRoute } from './api-routes.js';
import { localApiSocketPath } from './local-api-url.js';

export interface LocalApiCallOptions {
  /** Give up after this long (DEADLINE_EXCEEDED); the daemon sees the request go away. */
  readonly timeoutMs?: number;
  /** Abandon the call (e.g. on SIGINT); the daemon sees the request go away too. */
  readonly signal?: AbortSignal;
}

/** Reads answer at once; connect and expose wait for the data plane and the control server. */
const defaultTimeoutMs: Readonly<Record<LocalApiRoute, number>> = {
  status: 15_000,
  services: 30_000,
  connect: 120_000,
  disconnect: 60_000,
  expose: 120_000,
  unexpose: 60_000,
};

const errorCodes: ReadonlySet<string> = new Set<ErrorCode>([
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'UNAUTHENTICATED',
  'FAILED_PRECONDITION',
  'DEADLINE_EXCEEDED',
  'UNAVAILABLE',
  'CANCELLED',
  'RESOURCE_EXHAUSTED',
  'CONFIG_INVALID',
  'EXEC_FAILED',
  'CHAIN_INVALID',
  'INTERNAL',
]);

/**
 * The typed client of the agent's local API (what the CLI uses). A failure the daemon reports comes
 * back as the daemon's own AgentError (code, message, hint); a daemon that is not running, or a
 * socket this user may not open, becomes an AgentError that says what to do about it.
 */
export class LocalApiClient {
  readonly url: string;
  readonly #path: string;

  constructor(url: string) {
    this.url = url;
    this.#path = localApiSocketPath(url);
  }

  status(options: LocalApiCallOptions = {}): Promise<StatusReport> {
    return this.#call('status', undefined, options);
  }

  services(options: LocalApiCallOptions = {}): Promise<ServicesReport> {
    return this.#call('services', undefined, options);
  }

  connect(req: ConnectRequest, options: LocalApiCallOptions = {}): Promise<ConnectionRow> {
    return this.#call('connect', req, options);
  }

  disconnect(req: DisconnectRequest, options: LocalApiCallOptions = {}): Promise<ConnectionRow> {
    return this.#call('disconnect', req, options);
  }

  expose(req: ExposeRequest, options: LocalApiCallOptions = {}): Promise<ExposeRow> {
    return this.#call('expose', req, options);
  }

  unexpose(req: UnexposeRequest, options: LocalApiCallOptions = {}): Promise<ExposeRow> {
    return this.#call('unexpose', req, options);
  }

  #call<T>(route: LocalApiRoute, body: unknown, options: LocalApiCallOptions): Promise<T> {
    const { method, path } = localApiRoutes[route];
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs[route];
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        f();
      };
      const req = request({
        socketPath: this.#path,
        // One request per process in the CLI: no pooled keep-alive socket to hold the process open.
        agent: false,
        method,
        path,
        // Any host name does; the socket is the address. `local` is what the curl examples use.
        headers: {
          host: 'local',
          accept: 'application/json',
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      });
      const timer = setTimeout(() => {
        finish(() => {
          reject(
            new AgentError(
              'DEADLINE_EXCEEDED',
              `the nsm-agent daemon did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)}s`,
              {
                hint: "see what the agent is doing: journalctl -u nsm-agent (or the 'nsm-agent run' output)",
              },
            ),
          );
        });
        req.destroy();
      }, timeoutMs);
      const onAbort = (): void => {
        finish(() => {
          reject(
            new AgentError('CANCELLED', `${method} ${path} was cancelled`, { cause: options.signal?.reason }),
          );
        });
        req.destroy();
      };
      if (options.signal?.aborted === true) {
        onAbort();
        return;
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      req.once('error', (e: NodeJS.ErrnoException) => {
        finish(() => {
          reject(this.#transportError(e));
        });
      });
      req.once('response', (res: IncomingMessage) => {
        readAll(res).then(
          (text) => {
            finish(() => {
              try {
                resolve(decode(res.statusCode ?? 0, text, method, path) as T);
              } catch (e: unknown) {
                reject(e instanceof Error ? e : new Error(String(e)));
              }
            });
          },
          (e: unknown) => {
            finish(() => {
              reject(this.#transportError(e as NodeJS.ErrnoException));
            });
          },
        );
      });
      req.end(payload);
    });
  }

  #transportError(e: NodeJS.ErrnoException): AgentError {
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
      return new AgentError(
        'UNAVAILABLE',
        `the nsm-agent daemon is not running (no socket at ${this.#path})`,
        {
          hint: 'start it: systemctl start nsm-agent (or nsm-agent run)',
          cause: e,
        },
      );
    }
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      return new AgentError(
        'PERMISSION_DENIED',
        `not allowed to open the agent's local API socket ${this.#path}`,
        {
          hint: 'run as root (the local API socket is root-only)',
          cause: e,
        },
      );
    }
    return new AgentError('UNAVAILABLE', `cannot reach the nsm-agent daemon at ${this.url}: ${describe(e)}`, {
      hint: 'check that the agent is running: systemctl status nsm-agent',
      cause: e,
    });
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function decode(status: number, text: string, method: string, path: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new AgentError('INTERNAL', `the agent answered ${method} ${path} with HTTP ${status} and no JSON`, {
      hint: 'is something other than nsm-agent listening on this socket? check --api',
    });
  }
  if (status >= 200 && status < 300) return value;
  const error = (value as Partial<ErrorBody> | null)?.error;
  if (typeof error?.message !== 'string') {
    throw new AgentError('INTERNAL', `the agent answered ${method} ${path} with HTTP ${status}`, {
      hint: 'is something other than nsm-agent listening on this socket? check --api',
    });
  }
  const code: ErrorCode = errorCodes.has(error.code) ? error.code : 'INTERNAL';
  throw new AgentError(code, error.message, {
    ...(typeof error.hint === 'string' ? { hint: error.hint } : {}),
    ...(error.details === undefined ? {} : { details: error.details }),
  });
}
