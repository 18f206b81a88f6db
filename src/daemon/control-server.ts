import { join } from 'node:path';
import { EnrolmentService } from '../api/index.js';
import { insecure, startServer } from '../api/grpc/index.js';
import type { GrpcServer } from '../api/grpc/index.js';
import { createTokenSigner } from '../api/token/index.js';
import type { TokenSigner } from '../api/token/index.js';
import type { Clock } from '../host/index.js';
import { systemClock } from '../host/index.js';
import {
  HostStore,
  TokenStore,
  enrolmentAdminService,
  enrolmentServerCredentials,
  enrolmentService,
  initCa,
  keepServerSvidFresh,
  loadCa,
  refreshServerSvid,
} from '../identity/index.js';
import type { ServerPki } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { createRegistryServices } from '../registry/index.js';
import { openStore } from '../store/index.js';
import type { OpenStoreOptions } from '../store/index.js';

/** `<dataDir>` layout of the control server; identity keeps its own files under `<dataDir>/ca`. */
export const controlServerFiles = {
  store: (dataDir: string): string => join(dataDir, 'store'),
  adminSocket: (dataDir: string): string => join(dataDir, 'admin.sock'),
} as const;

export const DEFAULT_SERVER_DATA_DIR = '/var/lib/nsm-agent/server';
export const DEFAULT_SERVER_LISTEN = 'tcp://:5002';

export interface InitResult {
  readonly trustDomain: string;
  readonly dataDir: string;
  readonly caPin: string;
  readonly serverSpiffeId: string;
}

/** `nsm-agent server init`: the mesh CA and the server's SVID; refuses to replace an existing CA. */
export async function initControlServer(options: {
  trustDomain: string;
  dataDir: string;
}): Promise<InitResult> {
  const pki = await initCa(options);
  return {
    trustDomain: pki.ca.trustDomain,
    dataDir: options.dataDir,
    caPin: `sha256:${Buffer.from(pki.ca.pin).toString('hex')}`,
    serverSpiffeId: pki.server.spiffeId,
  };
}

export interface ControlServerOptions {
  readonly dataDir: string;
  /** Where hosts and NSM components reach us (tcp://[host]:port); default tcp://:5002. */
  readonly listen?: string;
  /**
   * The URL written into enrolment tokens: how hosts reach this server. Default: the listen URL with
   * `:port`-only hosts replaced by this host's name, which the operator should override when hosts
   * reach the server through another name or address.
   */
  readonly publicUrl?: string;
  /** `embedded` (default, `<dataDir>/store`), `etcds://host:port[,…]` or `etcd://127.0.0.1:port`. */
  readonly store?: string;
  /** TLS files for an etcds:// store (`--store-ca`, `--store-cert`, `--store-key`). */
  readonly storeTls?: StoreTlsFiles;
  readonly log: Logger;
  readonly clock?: Clock;
  /** Lifetime of agent SVIDs (default 1 h). */
  readonly svidTtlMs?: number;
  /** Registry NSE expiration (default 1 min). */
  readonly registryExpirationMs?: number;
  readonly hostname: string;
}

/** The TLS files of an etcds:// store, as openStore takes them. */
export type StoreTlsFiles = NonNullable<OpenStoreOptions['etcdTls']>;

export interface RunningControlServer {
  readonly url: string;
  readonly publicUrl: string;
  readonly adminSocket: string;
  readonly store: string;
  close(): Promise<void>;
}

/**
 * `nsm-agent server run`: the NSM registry and the enrolment service on one mTLS port (client
 * certificates optional so hosts without an identity can enrol: every method except Enrol needs an
 * SVID of this mesh), and the admin API (tokens, hosts) on a root-only unix socket in the data dir.
 */
export async function startControlServer(options: ControlServerOptions): Promise<RunningControlServer> {
  const clock = options.clock ?? systemClock;
  const log = options.log.child({ role: 'control-server' });
  // A server SVID past half its life is re-issued (same key) before we serve with it.
  const pki = await refreshServerSvid(await loadCa(options.dataDir), { dataDir: options.dataDir, clock });
  const storeSpec = options.store ?? 'embedded';
  const store = await openStore(storeSpec, {
    embeddedDir: controlServerFiles.store(options.dataDir),
    ...(options.storeTls ? { etcdTls: options.storeTls } : {}),
    log,
    clock,
  });
  let grpc: GrpcServer | undefined;
  let admin: GrpcServer | undefined;
  let registry: ReturnType<typeof createRegistryServices> | undefined;
  try {
    const tokens = new TokenStore({ store, clock, log });
    const hosts = new HostStore({ store, clock, log });
    // The registry signs its path tokens with the server SVID; tokens never outlive the certificate,
    // so the signer follows the certificate when it is re-issued (below).
    let signer = serverSigner(pki, clock);
    const currentSigner: TokenSigner = {
      spiffeId: signer.spiffeId,
      mint: (peer, mintOptions) => signer.mint(peer, mintOptions),
    };
    registry = createRegistryServices({
      store,
      clock,
      log,
      signer: currentSigner,
      ...(options.registryExpirationMs !== undefined
        ? { defaultExpirationMs: options.registryExpirationMs }
        : {}),
    });
    const tls = enrolmentServerCredentials(pki);
    const credentials = {
      ...tls,
      // Mesh members only, except Enrol (hosts without an identity yet; the token authenticates them).
      authorizePeer: (id: string) => id.startsWith(`spiffe://${pki.ca.trustDomain}/`),
      anonymousMethods: new Set([`/${EnrolmentService.typeName}/Enrol`]),
    };
    grpc = await startServer({
      listen: [{ url: options.listen ?? DEFAULT_SERVER_LISTEN, credentials }],
      services: [
        ...registry.services,
        enrolmentService({ ca: pki.ca, tokens, hosts, clock, log, ...svidTtl(options.svidTtlMs) }),
      ],
      log,
    });
    const url = grpc.address;
    const publicUrl = options.publicUrl ?? defaultPublicUrl(url, options.hostname);
    admin = await startServer({
      listen: [{ url: `unix://${controlServerFiles.adminSocket(options.dataDir)}`, credentials: insecure() }],
      services: [
        enrolmentAdminService({
          tokens,
          hosts,
          serverUrl: publicUrl,
          caPin: pki.ca.pin,
          // The socket is 0600 in a root-owned dir: whoever reaches it is the operator.
          authorize: () => true,
          log,
        }),
      ],
      socketMode: 0o600,
      log,
    });
    log.info(
      { url, publicUrl, store: store.description, trustDomain: pki.ca.trustDomain },
      'control server ready',
    );
    const servers = [grpc, admin];
    const views = registry;
    // Ended tokens (used, expired, revoked) are kept a day so `token list` and late retries explain
    // them, then removed: a server that creates tokens for years does not keep them all.
    const pruning = tokens.startPruning();
    // A server that runs for months re-issues its own SVID at half-life and serves it to new
    // connections without a restart (the old one stays valid for the connections that have it).
    const svidRefresh = keepServerSvidFresh(pki, {
      dataDir: options.dataDir,
      clock,
      log,
      onRefreshed: (next) => {
        tls.update(next);
        signer = serverSigner(next, clock);
      },
    });
    let closing: Promise<void> | undefined;
    return {
      url,
      publicUrl,
      adminSocket: controlServerFiles.adminSocket(options.dataDir),
      store: store.description,
      close() {
        closing ??= (async () => {
          // Servers first (no new calls), then the registry's store watches, then the store.
          await Promise.all(servers.map((s) => s.close({ graceMs: 2_000 })));
          views.close();
          await Promise.all([pruning.stop(), svidRefresh.stop()]);
          await store.close();
          log.info('control server stopped');
        })();
        return closing;
      },
    };
  } catch (e: unknown) {
    await Promise.all([grpc?.close({ graceMs: 0 }), admin?.close({ graceMs: 0 })]);
    registry?.close();
    await store.close();
    throw e;
  }
}

function serverSigner(pki: ServerPki, clock: Clock): TokenSigner {
  return createTokenSigner({
    spiffeId: pki.server.spiffeId,
    certificatePem: pki.server.certPem,
    privateKeyPem: pki.server.keyPem,
    clock,
  });
}

function svidTtl(ms: number | undefined): { svidTtlMs?: number } {
  return ms === undefined ? {} : { svidTtlMs: ms };
}

/** tcp://:5002 → tcp://<hostname>:5002; tcp://0.0.0.0 and [::] likewise. */
function defaultPublicUrl(url: string, hostname: string): string {
  return url.replace(/^tcp:\/\/(?:|0\.0\.0\.0|\[::\]):/, `tcp://${hostname}:`);
}
