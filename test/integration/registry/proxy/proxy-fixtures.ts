// An upstream registry that can be stopped and started again on the same port (with a fresh store),
// agents' registry proxies served on unix sockets in a temp dir, and a local client for them.
import type { ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChannelCredentials, Client, Metadata } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import type { MessageInitShape } from '../../../../src/api/index.js';
import {
  NetworkServiceEndpointRegistryService,
  NetworkServiceEndpointSchema,
  NetworkServiceRegistryService,
} from '../../../../src/api/index.js';
import type { NetworkServiceEndpoint, NetworkServiceSchema } from '../../../../src/api/index.js';
import {
  clientCredentials,
  deserializerFor,
  dial,
  dialTarget,
  insecure,
  parseGrpcUrl,
  serializerFor,
  serverCredentials,
  startServer,
} from '../../../../src/api/grpc/index.js';
import type { ClientTuning, ServiceClient } from '../../../../src/api/grpc/index.js';
import { createTokenSigner } from '../../../../src/api/token/index.js';
import type { Clock, Random } from '../../../../src/host/index.js';
import { systemClock } from '../../../../src/host/index.js';
import { createLogger } from '../../../../src/log/index.js';
import {
  RegistryProxy,
  UPSTREAM_STATUS_HEADER,
  createRegistryServices,
} from '../../../../src/registry/index.js';
import type { BackoffOptions } from '../../../../src/registry/index.js';
import { MemoryStore } from '../../../../src/store/index.js';
import type { TestSvid } from '../../../helpers/pki.js';
import { SERVER_ID, mesh } from '../fixtures.js';

const silent = createLogger({ level: 'silent' });

/** The control server's registry: real mTLS gRPC on loopback, a MemoryStore per start. */
export class Upstream {
  #port = 0;
  #running: { close(): Promise<void> } | undefined;
  readonly defaultExpirationMs: number | undefined;

  constructor(t: ExecutionContext, options: { defaultExpirationMs?: number } = {}) {
    this.defaultExpirationMs = options.defaultExpirationMs;
    t.teardown(() => this.stop());
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.#port}`;
  }

  /** Starts (again) on the same port, always with an empty store. */
  async start(): Promise<void> {
    if (this.#running) throw new Error('upstream already running');
    const m = await mesh();
    const store = new MemoryStore({ clock: systemClock });
    const registry = createRegistryServices({
      store,
      clock: systemClock,
      log: silent,
      signer: createTokenSigner({
        spiffeId: SERVER_ID,
        certificatePem: m.server.certPem,
        privateKeyPem: m.server.keyPem,
        clock: systemClock,
      }),
      ...(this.defaultExpirationMs === undefined ? {} : { defaultExpirationMs: this.defaultExpirationMs }),
    });
    const server = await startServer({
      listen: [
        {
          url: `tcp://127.0.0.1:${this.#port}`,
          credentials: serverCredentials({
            bundlePem: m.ca.certPem,
            certChainPem: m.server.chainPem,
            keyPem: m.server.keyPem,
            requireClientCert: true,
          }),
        },
      ],
      services: registry.services,
      log: silent,
    });
    this.#port = server.port ?? 0;
    this.#running = {
      close: async () => {
        await server.close({ graceMs: 50 });
        registry.close();
        await store.close();
      },
    };
  }

  async stop(): Promise<void> {
    const r = this.#running;
    this.#running = undefined;
    await r?.close();
  }
}

export interface AgentProxy {
  readonly proxy: RegistryProxy;
  readonly local: LocalClient;
  readonly publicUrl: string;
}

export interface ProxyOptions {
  readonly upstreamUrl: string;
  readonly svid?: TestSvid;
  readonly clock?: Clock;
  readonly random: Random;
  readonly backoff?: BackoffOptions;
  readonly localExpirationMs?: number;
  readonly tuning?: Partial<ClientTuning>;
  readonly publicUrl?: string;
  /** Default 0 here (the proxy's default is 2 s): most tests time the reconnect itself. */
  readonly reconnectSpreadMs?: number;
}

/** Fast reconnects for tests (grpc-js's own channel backoff too). */
export const FAST: Partial<ClientTuning> = { initialReconnectBackoffMs: 50, maxReconnectBackoffMs: 200 };

export async function startProxy(t: ExecutionContext, options: ProxyOptions): Promise<AgentProxy> {
  const m = await mesh();
  const svid = options.svid ?? m.a;
  const publicUrl = options.publicUrl ?? 'tcp://192.0.2.10:5002';
  const proxy = new RegistryProxy({
    upstreamUrl: options.upstreamUrl,
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: svid.chainPem,
      keyPem: svid.keyPem,
      expectedServerId: SERVER_ID,
    }),
    // Upstream checks token times against the real clock, whatever clock drives the proxy's timers.
    signer: createTokenSigner({
      spiffeId: svid.spiffeId,
      certificatePem: svid.certPem,
      privateKeyPem: svid.keyPem,
      clock: systemClock,
    }),
    upstreamSpiffeId: SERVER_ID,
    publicUrl,
    clock: options.clock ?? systemClock,
    random: options.random,
    log: silent,
    backoff: options.backoff ?? { initialMs: 50, maxMs: 200 },
    callTimeoutMs: 2_000,
    tuning: { ...FAST, ...options.tuning },
    reconnectSpreadMs: options.reconnectSpreadMs ?? 0,
    ...(options.localExpirationMs === undefined ? {} : { localExpirationMs: options.localExpirationMs }),
  });
  const dir = await mkdtemp(join(tmpdir(), 'nsm-proxy-'));
  const server = await startServer({
    listen: [{ url: `unix://${join(dir, 'registry.sock')}`, credentials: insecure() }],
    services: proxy.services,
    log: silent,
  });
  proxy.start();
  const local = new LocalClient(`unix://${join(dir, 'registry.sock')}`);
  t.teardown(async () => {
    local.close();
    await server.close({ graceMs: 50 });
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { proxy, local, publicUrl };
}

/** A local workload talking to the agent's proxy socket, as an NSE or the nsmgr would. */
export class LocalClient {
  readonly ns: ServiceClient<typeof NetworkServiceRegistryService>;
  readonly nse: ServiceClient<typeof NetworkServiceEndpointRegistryService>;
  readonly #conn: ReturnType<typeof dial>;
  readonly #raw: Client;

  constructor(url: string) {
    this.#conn = dial(url, { credentials: insecure(), defaultTimeoutMs: 5_000 });
    this.ns = this.#conn.client(NetworkServiceRegistryService);
    this.nse = this.#conn.client(NetworkServiceEndpointRegistryService);
    this.#raw = new Client(dialTarget(parseGrpcUrl(url)), ChannelCredentials.createInsecure());
  }

  /** Register, with the proxy's `nsm-agent-upstream` answer header. */
  registerNse(
    nse: MessageInitShape<typeof NetworkServiceEndpointSchema>,
  ): Promise<{ response: NetworkServiceEndpoint; upstream: string | undefined }> {
    return new Promise((resolve, reject) => {
      let upstream: string | undefined;
      const call = this.#raw.makeUnaryRequest(
        '/registry.NetworkServiceEndpointRegistry/Register',
        serializerFor(NetworkServiceEndpointSchema),
        deserializerFor(NetworkServiceEndpointSchema),
        nse,
        new Metadata(),
        { deadline: new Date(Date.now() + 5_000) },
        (err: ServiceError | null, response?: NetworkServiceEndpoint) => {
          if (err) reject(err);
          else if (response) resolve({ response, upstream });
          else reject(new Error('no response'));
        },
      );
      call.on('metadata', (md: Metadata) => {
        const v = md.get(UPSTREAM_STATUS_HEADER)[0];
        upstream = typeof v === 'string' ? v : undefined;
      });
    });
  }

  async unregisterNse(nse: MessageInitShape<typeof NetworkServiceEndpointSchema>): Promise<void> {
    await this.nse.unregister(nse);
  }

  async registerNs(ns: MessageInitShape<typeof NetworkServiceSchema>): Promise<void> {
    await this.ns.register(ns);
  }

  close(): void {
    this.#conn.close();
    this.#raw.close();
  }
}

/** Polls `check` every 20 ms until it is true or `timeoutMs` passed; returns the time it took. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A TCP relay in front of the upstream. `freeze()` stops forwarding on the connections open now but
 * keeps their sockets open: to the proxy this is a half-open connection (R26) — no FIN, no RST,
 * just silence. New connections are relayed normally.
 */
export class FreezableRelay {
  readonly #server: Server;
  readonly #pairs = new Set<{ a: Socket; b: Socket; frozen: boolean }>();
  #port = 0;

  constructor(
    t: ExecutionContext,
    readonly targetPort: () => number,
  ) {
    this.#server = createServer((a) => {
      const b = connect(this.targetPort(), '127.0.0.1');
      const pair = { a, b, frozen: false };
      this.#pairs.add(pair);
      a.on('data', (d: Buffer) => {
        if (!pair.frozen) b.write(d);
      });
      b.on('data', (d: Buffer) => {
        if (!pair.frozen) a.write(d);
      });
      const end = (): void => {
        if (pair.frozen) return;
        a.destroy();
        b.destroy();
        this.#pairs.delete(pair);
      };
      a.on('close', end).on('error', end);
      b.on('close', end).on('error', end);
    });
    t.teardown(() => this.close());
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const addr = this.#server.address();
    this.#port = typeof addr === 'object' && addr ? addr.port : 0;
    return `tcp://127.0.0.1:${this.#port}`;
  }

  /** Freezes every connection open now; returns how many. */
  freeze(): number {
    for (const p of this.#pairs) p.frozen = true;
    return this.#pairs.size;
  }

  async close(): Promise<void> {
    for (const p of this.#pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    this.#pairs.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
