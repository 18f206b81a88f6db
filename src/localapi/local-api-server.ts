import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { prepareUnixSocket, restrictUnixSocket } from '../api/grpc/unix-socket.js';
import { AgentError, describe } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { AgentControl } from './agent-control.js';
import { httpStatusFor, localApiRoutes, maxRequestBodyBytes } from './api-routes.js';
import type { ErrorBody, LocalApiRoute } from './api-routes.js';
import { localApiSocketPath } from './local-api-url.js';
import {
  parseConnectRequest,
  parseDisconnectRequest,
  parseExposeRequest,
  parseUnexposeRequest,
} from './request-validation.js';

export interface LocalApiOptions {
  /** `unix:///absolute/path.sock`. */
  readonly url: string;
  readonly control: AgentControl;
  readonly log: Logger;
  /** File mode of the socket; 0600 by default: the API changes the data plane, so root only. */
  readonly socketMode?: number;
}

export interface LocalApi {
  readonly url: string;
  /** Stops listening, aborts requests in flight (their `signal`), and removes the socket file. */
  close(): Promise<void>;
}

type Handler = (body: unknown, signal: AbortSignal) => Promise<unknown>;

/**
 * Serves an AgentControl as HTTP/1.1 + JSON on a unix socket, as Tailscale's LocalAPI and the
 * Docker socket do, so `curl --unix-socket /run/nsm-agent/api.sock http://local/v1/status` works.
 * The socket's parent directory is created (0755), a socket left by a dead daemon is replaced,
 * and a socket a live daemon still answers on is never taken over.
 */
export async function startLocalApi(options: LocalApiOptions): Promise<LocalApi> {
  const path = localApiSocketPath(options.url);
  const log = options.log.child({ subsystem: 'localapi' });
  const { control } = options;
  const handlers: Record<LocalApiRoute, Handler> = {
    status: () => control.status(),
    services: (_body, signal) => control.services(signal),
    connect: (body, signal) => control.connect(parseConnectRequest(body), signal),
    disconnect: (body, signal) => control.disconnect(parseDisconnectRequest(body), signal),
    expose: (body, signal) => control.expose(parseExposeRequest(body), signal),
    unexpose: (body, signal) => control.unexpose(parseUnexposeRequest(body), signal),
  };
  const inFlight = new Set<AbortController>();
  const server = createServer((req, res) => {
    const abort = new AbortController();
    inFlight.add(abort);
    // 'close' before the answer is written means the client went away (or we are closing).
    res.once('close', () => {
      inFlight.delete(abort);
      if (!res.writableFinished) abort.abort(new Error('the local API client went away'));
    });
    void serve(req, res, handlers, abort.signal, log);
  });

  // 0755 for the directory (others may look for the socket), unless it already exists.
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await prepareUnixSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    throw AgentError.wrap(
      e,
      'UNAVAILABLE',
      `cannot listen on ${options.url}`,
      'check the directory and its permissions',
    );
  });
  try {
    await restrictUnixSocket(path, options.socketMode ?? 0o600);
  } catch (e: unknown) {
    server.close();
    throw e;
  }
  server.on('error', (e: unknown) => log.error({ err: describe(e) }, 'local API server error'));
  log.info({ url: options.url }, 'local API listening');

  let closing: Promise<void> | undefined;
  return {
    url: options.url,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const a of inFlight) a.abort(new Error('the agent is stopping'));
        // Node removes the socket file when a unix-socket server closes.
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  handlers: Readonly<Record<LocalApiRoute, Handler>>,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const started = Date.now();
  let status: number;
  try {
    const route = routeOf(req);
    const body = localApiRoutes[route].method === 'POST' ? await readJson(req) : undefined;
    const result = await handlers[route](body, signal);
    status = 200;
    send(res, status, result);
  } catch (e: unknown) {
    status = sendError(res, e, log, req);
  }
  log.debug({ method: req.method, path: req.url, status, ms: Date.now() - started }, 'local API request');
}

/** A request the HTTP layer refuses with a status of its own (405, 413); still INVALID_ARGUMENT to the client. */
class RequestError extends AgentError {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, hint: string, headers: Record<string, string> = {}) {
    super('INVALID_ARGUMENT', message, { hint });
    this.status = status;
    this.headers = headers;
  }
}

function routeOf(req: IncomingMessage): LocalApiRoute {
  const path = (req.url ?? '/').split('?')[0];
  for (const [name, route] of Object.entries(localApiRoutes) as [
    LocalApiRoute,
    (typeof localApiRoutes)[LocalApiRoute],
  ][]) {
    if (route.path !== path) continue;
    if (route.method !== req.method) {
      throw new RequestError(
        405,
        `${req.method ?? '?'} is not allowed on ${path}`,
        `use ${route.method} ${path}`,
        {
          allow: route.method,
        },
      );
    }
    return name;
  }
  throw new AgentError('NOT_FOUND', `no local API route ${req.method ?? '?'} ${req.url ?? ''}`, {
    hint: `the routes are: ${Object.values(localApiRoutes)
      .map((r) => `${r.method} ${r.path}`)
      .join(', ')}`,
  });
}

/** The whole body as JSON; over maxRequestBodyBytes is refused without reading the rest. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxRequestBodyBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > maxRequestBodyBytes) throw tooLarge();
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') {
    throw new AgentError('INVALID_ARGUMENT', 'the request has no body', {
      hint: 'send a JSON object, e.g. {"service": "db-net"}',
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw new AgentError('INVALID_ARGUMENT', `the request body is not JSON: ${describe(e)}`, {
      hint: 'send a JSON object, e.g. {"service": "db-net"}',
    });
  }
}

function tooLarge(): AgentError {
  return new RequestError(
    413,
    `the request body is larger than ${maxRequestBodyBytes} bytes`,
    'local API requests are small JSON objects; check what is being sent',
  );
}

function send(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed || res.writableEnded) return;
  const text = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** An AgentError goes out as it is; anything else is a bug, logged in full and answered generically. */
function sendError(res: ServerResponse, e: unknown, log: Logger, req: IncomingMessage): number {
  let body: ErrorBody;
  let status: number;
  const headers: Record<string, string> = {};
  if (e instanceof AgentError) {
    status = e instanceof RequestError ? e.status : httpStatusFor(e.code);
    if (e instanceof RequestError) Object.assign(headers, e.headers);
    const { details } = e;
    const suffix = e.hint === undefined ? '' : `; ${e.hint}`;
    const message =
      suffix !== '' && e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message;
    body = {
      error: {
        code: e.code,
        message,
        ...(e.hint === undefined ? {} : { hint: e.hint }),
        ...(Object.keys(details).length === 0 ? {} : { details }),
      },
    };
  } else {
    log.error(
      { err: describe(e), method: req.method, path: req.url },
      'local API request failed with an internal error',
    );
    status = 500;
    body = {
      error: {
        code: 'INTERNAL',
        message: 'the agent failed to handle the request (internal error)',
        hint: "see the agent's log (journalctl -u nsm-agent) and report it",
      },
    };
  }
  send(res, status, body, headers);
  return status;
}
