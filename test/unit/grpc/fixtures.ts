// Shared set-up for the gRPC tests: real servers on real sockets, torn down with the test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { create } from '@bufbuild/protobuf';
import { dial, implement, insecure, startServer } from '../../../src/api/grpc/index.js';
import type {
  DialOptions,
  GrpcConnection,
  GrpcServer,
  ServiceRegistration,
  StartServerOptions,
} from '../../../src/api/grpc/index.js';
import { ConnectionSchema } from '../../../src/api/gen/connection_pb.js';
import { NetworkService } from '../../../src/api/gen/networkservice_pb.js';
import { createLogger, silentLogger } from '../../../src/log/index.js';
import type { Logger } from '../../../src/log/index.js';

/** A fresh directory under the OS temp dir, removed after the test. */
export async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-grpc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger whose JSON lines the test can read. */
export function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  return { log, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** NetworkService that answers Request with the requested connection, id set and a server label. */
export function echoNetworkService(): ServiceRegistration {
  return implement(NetworkService, {
    request(req, ctx) {
      const conn = req.connection ?? create(ConnectionSchema);
      conn.id ||= 'conn-1';
      conn.labels = { ...conn.labels, servedBy: ctx.peer.spiffeId ?? 'local' };
      return conn;
    },
    close() {
      return {};
    },
  });
}

/** Starts a server and closes it (quickly) when the test ends. */
export async function serve(
  t: ExecutionContext,
  options: Omit<StartServerOptions, 'log'> & { readonly log?: Logger },
): Promise<GrpcServer> {
  const server = await startServer({ log: silentLogger(), ...options });
  t.teardown(() => server.close({ graceMs: 100 }));
  return server;
}

/** Dials and closes the connection when the test ends. */
export function connect(t: ExecutionContext, url: string, options?: DialOptions): GrpcConnection {
  const conn = dial(url, options ?? { credentials: insecure({ allowLoopbackTcp: true }) });
  t.teardown(() => conn.close());
  return conn;
}

/** Loopback tcp on an ephemeral port, plain text (tests only). */
export const loopback = {
  url: 'tcp://127.0.0.1:0',
  credentials: insecure({ allowLoopbackTcp: true }),
} as const;
