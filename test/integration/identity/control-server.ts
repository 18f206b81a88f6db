// A control server's identity half on loopback: mesh CA, token and host stores, the enrolment
// service behind its TLS listener. Real TLS, real sockets; torn down with the test.
import 'reflect-metadata';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { startServer } from '../../../src/api/grpc/index.js';
import type {
  GrpcServer,
  ServerTransportCredentials,
  ServiceRegistration,
} from '../../../src/api/grpc/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import {
  HostStore,
  TokenStore,
  enrolmentServerCredentials,
  enrolmentService,
  initCa,
} from '../../../src/identity/index.js';
import type { CreateTokenOptions, HostFactsRecord, ServerPki } from '../../../src/identity/index.js';
import { silentLogger } from '../../../src/log/index.js';
import type { Logger } from '../../../src/log/index.js';
import { MemoryStore } from '../../../src/store/index.js';

export const TD = 'mesh.test';

export const FACTS: HostFactsRecord = { hostname: 'db-1', os: 'linux', arch: 'x64', agentVersion: '0.1.0' };

export async function tempDir(t: ExecutionContext, prefix = 'nsm-enrol-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under dir (relative paths), for "nothing was left behind" checks. */
export async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
  } catch {
    return [];
  }
}

export interface TestControlServer {
  readonly pki: ServerPki;
  readonly url: string;
  readonly tokens: TokenStore;
  readonly hosts: HostStore;
  /** Drives token expiry only; certificates use the real clock, as TLS does. */
  readonly tokenClock: FakeClock;
  readonly server: GrpcServer;
  token(options?: Partial<CreateTokenOptions>): Promise<string>;
}

export async function controlServer(
  t: ExecutionContext,
  options: {
    readonly credentials?: (pki: ServerPki) => ServerTransportCredentials;
    readonly svidTtlMs?: number;
    readonly log?: Logger;
    /** More services on the same listener, e.g. the admin service. */
    readonly extraServices?: (
      pki: ServerPki,
      stores: { readonly tokens: TokenStore; readonly hosts: HostStore },
    ) => ServiceRegistration[];
  } = {},
): Promise<TestControlServer> {
  const pki = await initCa({ trustDomain: TD, dataDir: await tempDir(t, 'nsm-ca-') });
  const tokenClock = new FakeClock(Date.now());
  const store = new MemoryStore();
  const log = options.log ?? silentLogger();
  const tokens = new TokenStore({ store, clock: tokenClock, log });
  const hosts = new HostStore({ store, log });
  const server = await startServer({
    listen: [
      { url: 'tcp://127.0.0.1:0', credentials: (options.credentials ?? enrolmentServerCredentials)(pki) },
    ],
    services: [
      enrolmentService({
        ca: pki.ca,
        tokens,
        hosts,
        log,
        ...(options.svidTtlMs === undefined ? {} : { svidTtlMs: options.svidTtlMs }),
      }),
      ...(options.extraServices?.(pki, { tokens, hosts }) ?? []),
    ],
    log,
  });
  t.teardown(() => server.close({ graceMs: 100 }));
  const url = server.address;
  return {
    pki,
    url,
    tokens,
    hosts,
    tokenClock,
    server,
    token: async (o = {}) => (await tokens.create({ serverUrl: url, caPin: pki.ca.pin, ...o })).token,
  };
}
