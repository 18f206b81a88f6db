import { Server, ServerCredentials, experimental } from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { authorizationInterceptor } from './authorize-peer.js';
import type { ServerTransportCredentials } from './credentials.js';
import { createHealth } from './health.js';
import type { HealthStatus } from './health.js';
import type { ServiceRegistration } from './implement-service.js';
import { defaultServerTuning, serverOptions } from './options.js';
import type { ServerTuning } from './options.js';
import { bindAddress, formatGrpcUrl, isLocalOnly, parseGrpcUrl } from './url.js';
import type { GrpcUrl } from './url.js';
import { prepareUnixSocket, restrictUnixSocket } from './unix-socket.js';

/**
 * One address to listen on, with its own transport security: the daemon serves the same NSM API
 * on a unix socket (local peers, trusted by file mode) and on tcp (remote agents, mTLS), and one
 * credentials value for both would make one of them wrong.
 */
export interface Listener {
  readonly url: string;
  readonly credentials: ServerTransportCredentials;
}

export interface StartServerOptions {
  readonly listen: readonly Listener[];
  readonly services: readonly ServiceRegistration[];
  readonly log: Logger;
  readonly tuning?: Partial<ServerTuning>;
  /** Mode of unix sockets we create; 0660 lets the socket's group (local workloads) connect. */
  readonly socketMode?: number;
}

/** A listener as bound: `url` has the real port when port 0 was asked for. */
export type BoundListener = GrpcUrl & { readonly url: string };

export interface GrpcServer {
  readonly listeners: readonly BoundListener[];
  /** URL of the first listener. */
  readonly address: string;
  /** Bound port of the first tcp listener, if any. */
  readonly port: number | undefined;
  readonly health: HealthStatus;
  /**
   * Flips health to NOT_SERVING, lets calls in flight finish for up to `graceMs` (default 5 s),
   * then cancels what is left. Idempotent.
   */
  close(options?: { readonly graceMs?: number }): Promise<void>;
}

const DEFAULT_GRACE_MS = 5_000;

/** Binds every listener, registers the services plus grpc.health.v1, and starts serving. */
export async function startServer(options: StartServerOptions): Promise<GrpcServer> {
  if (options.listen.length === 0)
    throw new AgentError('CONFIG_INVALID', 'startServer needs at least one listener');
  const log = options.log.child({ subsystem: 'grpc-server' });
  const parsed = options.listen.map((l) => ({ url: parseGrpcUrl(l.url), credentials: l.credentials }));
  for (const l of parsed) checkTransport(l.url, l.credentials);

  const tuning = { ...defaultServerTuning, ...options.tuning };
  const server = new Server(serverOptions(tuning));
  const health = createHealth(options.services.map((s) => s.service.typeName));
  for (const s of [...options.services, health.registration])
    server.addService(s.definition, s.handlers(log));

  const listeners: BoundListener[] = [];
  try {
    for (const l of parsed) listeners.push(await bindOne(server, l.url, grpcCredentials(l.credentials, log)));
    for (const l of listeners) {
      if (l.kind === 'unix') await restrictUnixSocket(l.path, options.socketMode ?? 0o660);
    }
  } catch (e: unknown) {
    server.forceShutdown();
    throw e;
  }
  log.info(
    {
      listeners: listeners.map((l, i) => {
        const creds = parsed[i]?.credentials;
        return { url: l.url, tls: creds?.kind === 'tls' ? creds.spiffeId : 'none' };
      }),
      services: options.services.map((s) => s.service.typeName),
    },
    'gRPC server listening',
  );

  let closing: Promise<void> | undefined;
  return {
    listeners,
    // listen is non-empty and every listener was bound, so listeners[0] exists.
    address: listeners[0]?.url ?? '',
    port: listeners.find((l) => l.kind === 'tcp')?.port,
    health,
    close(closeOptions = {}) {
      closing ??= shutdown(server, health, closeOptions.graceMs ?? DEFAULT_GRACE_MS, log);
      return closing;
    },
  };
}

function checkTransport(url: GrpcUrl, credentials: ServerTransportCredentials): void {
  if (credentials.kind !== 'insecure' || url.kind === 'unix') return;
  const text = formatGrpcUrl(url);
  if (!isLocalOnly(url)) {
    throw new AgentError(
      'CONFIG_INVALID',
      `refusing to serve ${text} without TLS: it is reachable from other hosts`,
      {
        hint: 'use serverCredentials(...) for tcp listeners, or a unix:// socket for local peers',
      },
    );
  }
  if (!credentials.allowLoopbackTcp) {
    throw new AgentError('CONFIG_INVALID', `refusing to serve ${text} without TLS`, {
      hint: 'any local user can reach loopback tcp; pass insecure({ allowLoopbackTcp: true }) if that is intended',
    });
  }
}

function grpcCredentials(credentials: ServerTransportCredentials, log: Logger): ServerCredentials {
  if (credentials.kind === 'insecure') return ServerCredentials.createInsecure();
  const authorize = credentials.authorizePeer;
  if (authorize === undefined) return credentials.grpc;
  return experimental.createServerCredentialsWithInterceptors(credentials.grpc, [
    authorizationInterceptor(authorize, log, credentials.anonymousMethods),
  ]);
}

async function bindOne(server: Server, url: GrpcUrl, credentials: ServerCredentials): Promise<BoundListener> {
  if (url.kind === 'unix') {
    await prepareUnixSocket(url.path);
    await bindAsync(server, bindAddress(url), credentials, url);
    return { ...url, url: formatGrpcUrl(url) };
  }
  let port: number;
  try {
    port = await bindAsync(server, bindAddress(url), credentials, url);
  } catch (e: unknown) {
    // "All interfaces" is [::]; on hosts with IPv6 switched off only 0.0.0.0 exists.
    if (url.host !== '') throw e;
    port = await bindAsync(server, `0.0.0.0:${url.port}`, credentials, url);
  }
  const bound = { kind: 'tcp', host: url.host, port } as const;
  return { ...bound, url: formatGrpcUrl(bound) };
}

function bindAsync(
  server: Server,
  address: string,
  credentials: ServerCredentials,
  url: GrpcUrl,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => {
      if (err) {
        reject(
          new AgentError('FAILED_PRECONDITION', `cannot listen on ${formatGrpcUrl(url)}: ${describe(err)}`, {
            cause: err,
            hint: 'is the address in use by another process, or not on this host?',
          }),
        );
      } else {
        resolve(port);
      }
    });
  });
}

function shutdown(server: Server, health: HealthStatus, graceMs: number, log: Logger): Promise<void> {
  health.shutdown();
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      log.warn({ graceMs }, 'calls still running after the grace period; cancelling them');
      server.forceShutdown();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      log.info('gRPC server closed');
      resolve();
    });
  });
}
