import { hostname as osHostname } from 'node:os';
import { EnrolmentAdminService, timestampToMs } from '../api/index.js';
import type { HostInfoMessage as HostInfo, TokenInfoMessage as TokenInfo } from '../api/index.js';
import { dial, insecure } from '../api/grpc/index.js';
import type { Handlers, HostRow, TokenRow } from '../localapi/index.js';
import { AgentError } from '../errors/index.js';
import { enrollHost, issueToolIdentity, loadCa } from '../identity/index.js';
import { createLogger } from '../log/index.js';
import type { LogLevel } from '../log/index.js';
import { agentVersion } from '../util/index.js';
import { controlServerFiles, initControlServer, startControlServer } from './control-server.js';
import type { StoreTlsFiles } from './control-server.js';

/** The implementations main hands to the CLI (see cli/handlers.ts). */
export const handlers: Handlers = {
  controlServer: {
    init: (o) => initControlServer(o),

    async run(o, signal, ready) {
      const log = createLogger({ level: o.logLevel as LogLevel });
      const server = await startControlServer({
        dataDir: o.dataDir,
        log,
        hostname: osHostname(),
        ...(o.listen !== undefined ? { listen: o.listen } : {}),
        ...(o.publicUrl !== undefined ? { publicUrl: o.publicUrl } : {}),
        ...(o.store !== undefined ? { store: o.store } : {}),
        ...(o.storeCa !== undefined || o.storeCert !== undefined || o.storeKey !== undefined
          ? { storeTls: storeTlsFiles(o.storeCa, o.storeCert, o.storeKey) }
          : {}),
      });
      ready(server);
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      log.info('stopping: signal received');
      await server.close();
    },

    async issue(o) {
      const pki = await loadCa(o.dataDir);
      const files = await issueToolIdentity({
        ca: pki.ca,
        spiffeId: o.spiffeId,
        outDir: o.outDir,
        ...(o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {}),
      });
      return { ...files, expiresAt: new Date(files.expiresAt).toISOString() };
    },

    async createToken(o) {
      return withAdmin(o.dataDir, async (admin) => {
        const res = await admin.createToken({
          ttlSeconds: Math.ceil(o.ttlMs / 1000),
          uses: o.uses,
          labels: { ...o.labels },
        });
        if (!res.info) throw new AgentError('INTERNAL', 'the server returned a token without its details');
        return { token: res.token, info: tokenRow(res.info) };
      });
    },
    listTokens: (dataDir) => withAdmin(dataDir, async (a) => (await a.listTokens({})).tokens.map(tokenRow)),
    revokeToken: (dataDir, id) => withAdmin(dataDir, async (a) => tokenRow(await a.revokeToken({ id }))),
    listHosts: (dataDir) => withAdmin(dataDir, async (a) => (await a.listHosts({})).hosts.map(hostRow)),
    revokeHost: (dataDir, host) => withAdmin(dataDir, async (a) => hostRow(await a.revokeHost({ host }))),
  },

  agent: {
    async enroll(o) {
      const id = await enrollHost({
        token: o.token,
        stateDir: o.stateDir,
        replace: o.replace,
        hostFacts: {
          hostname: osHostname(),
          os: process.platform,
          arch: process.arch,
          agentVersion: agentVersion(),
        },
      });
      return {
        spiffeId: id.spiffeId,
        hostId: id.hostId,
        trustDomain: id.trustDomain,
        expiresAt: new Date(id.expiresAt).toISOString(),
      };
    },
    async run(o, signal, ready) {
      const { runAgent } = await import('./agent/run-agent.js');
      await runAgent(o, signal, ready);
    },
  },
};

/** Runs `fn` against the running server's admin socket; a clear error when no server runs there. */
async function withAdmin<T>(
  dataDir: string,
  fn: (admin: ReturnType<typeof adminClient>['client']) => Promise<T>,
): Promise<T> {
  const { conn, client } = adminClient(dataDir);
  try {
    await conn.waitForReady(new Date(Date.now() + 3_000)).catch((e: unknown) => {
      throw new AgentError(
        'UNAVAILABLE',
        `no control server answers on ${controlServerFiles.adminSocket(dataDir)}`,
        {
          cause: e,
          hint: `start it with: nsm-agent server run --data-dir ${dataDir} (token and hosts commands go through the running server)`,
        },
      );
    });
    return await fn(client);
  } finally {
    conn.close();
  }
}

function adminClient(dataDir: string) {
  const conn = dial(`unix://${controlServerFiles.adminSocket(dataDir)}`, { credentials: insecure() });
  return { conn, client: conn.client(EnrolmentAdminService) };
}

const iso = (ts: Parameters<typeof timestampToMs>[0] | undefined): string =>
  ts ? new Date(timestampToMs(ts)).toISOString() : '';

function tokenRow(t: TokenInfo): TokenRow {
  return {
    id: t.id,
    state: t.state,
    createdAt: iso(t.createdAt),
    expiresAt: iso(t.expiresAt),
    usesAllowed: t.usesAllowed,
    usesLeft: t.usesLeft,
    labels: t.labels,
  };
}

function hostRow(h: HostInfo): HostRow {
  return {
    hostId: h.hostId,
    hostname: h.facts?.hostname ?? '',
    spiffeId: h.spiffeId,
    state: h.revokedAt ? 'revoked' : 'active',
    enrolledAt: iso(h.enrolledAt),
    lastSeenAt: iso(h.lastSeenAt),
    svidExpiresAt: iso(h.svidExpiresAt),
    labels: h.labels,
  };
}

/** `--store-ca/--store-cert/--store-key` as the store wants them; a client pair without a CA is refused. */
function storeTlsFiles(
  caFile: string | undefined,
  certFile: string | undefined,
  keyFile: string | undefined,
): StoreTlsFiles {
  if (caFile === undefined) {
    throw new AgentError('CONFIG_INVALID', '--store-cert/--store-key need --store-ca', {
      hint: 'pass --store-ca <file>: the CA that signed etcd’s server certificate',
    });
  }
  return {
    caFile,
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
  };
}
