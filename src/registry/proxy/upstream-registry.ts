import { Metadata } from '@grpc/grpc-js';
import { NetworkServiceEndpointRegistryService, NetworkServiceRegistryService } from '../../api/index.js';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { dial } from '../../api/grpc/index.js';
import type {
  ClientTransportCredentials,
  ClientTuning,
  GrpcConnection,
  ServiceClient,
} from '../../api/grpc/index.js';
import { writeClientToken } from '../../api/token/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { AgentError } from '../../errors/index.js';
import { PATH_METADATA_KEY } from '../registry-path.js';

/** The path a first registry call sends (Go's JSON of an empty path). */
const FIRST_PATH = '{"Index":0,"PathSegments":null}';

export interface UpstreamRegistryOptions {
  readonly url: string;
  readonly credentials: ClientTransportCredentials;
  /** Mints the agent's per-call tokens (its SVID); upstream checks them against our TLS certificate. */
  readonly signer: TokenSigner;
  /** The upstream registry's SPIFFE ID: the audience of our tokens. */
  readonly spiffeId: string;
  readonly callTimeoutMs: number;
  readonly tuning?: Partial<ClientTuning>;
  /** Hears the round-trip time of every unary call upstream (for /metrics). */
  readonly onRoundTrip?: (method: string, seconds: number, ok: boolean) => void;
}

/**
 * The one channel to the upstream registry, calling it as NSM's registry clients do: every
 * Register/Unregister carries a fresh `nsm-client-token` and a first-call `path`, so upstream's
 * default policies accept us as the first hop and the name is owned by the agent's SPIFFE ID.
 * Keepalive comes from the client tuning (30 s ping, 10 s timeout), so a half-open TCP connection
 * fails the open watch streams instead of leaving them silent forever (R26).
 */
export class UpstreamRegistry {
  readonly #options: UpstreamRegistryOptions;
  readonly #conn: GrpcConnection;
  readonly ns: ServiceClient<typeof NetworkServiceRegistryService>;
  readonly nse: ServiceClient<typeof NetworkServiceEndpointRegistryService>;

  constructor(options: UpstreamRegistryOptions) {
    this.#options = options;
    this.#conn = dial(options.url, {
      credentials: options.credentials,
      defaultTimeoutMs: options.callTimeoutMs,
      ...(options.tuning ? { tuning: options.tuning } : {}),
    });
    this.ns = this.#conn.client(NetworkServiceRegistryService);
    this.nse = this.#conn.client(NetworkServiceEndpointRegistryService);
  }

  get url(): string {
    return this.#conn.url;
  }

  waitForReady(timeoutMs: number): Promise<void> {
    return this.#conn.waitForReady(new Date(Date.now() + timeoutMs));
  }

  #metadata(): Metadata {
    const md = new Metadata();
    writeClientToken(md, this.#options.signer.mint({ spiffeId: this.#options.spiffeId }));
    md.set(PATH_METADATA_KEY, FIRST_PATH);
    return md;
  }

  registerNse(nse: NetworkServiceEndpoint): Promise<NetworkServiceEndpoint> {
    return this.#timed('nse.register', () => this.nse.register(nse, { metadata: this.#metadata() }));
  }

  async unregisterNse(nse: NetworkServiceEndpoint): Promise<void> {
    await this.#timed('nse.unregister', () => this.nse.unregister(nse, { metadata: this.#metadata() }));
  }

  registerNs(ns: NetworkService): Promise<NetworkService> {
    return this.#timed('ns.register', () => this.ns.register(ns, { metadata: this.#metadata() }));
  }

  async unregisterNs(ns: NetworkService): Promise<void> {
    await this.#timed('ns.unregister', () => this.ns.unregister(ns, { metadata: this.#metadata() }));
  }

  async #timed<T>(method: string, call: () => Promise<T>): Promise<T> {
    const hook = this.#options.onRoundTrip;
    if (!hook) return call();
    const started = performance.now();
    try {
      const out = await call();
      hook(method, (performance.now() - started) / 1000, true);
      return out;
    } catch (e: unknown) {
      hook(method, (performance.now() - started) / 1000, false);
      throw e;
    }
  }

  close(): void {
    this.#conn.close();
  }
}

/**
 * Failures that say "upstream is not reachable right now" (retry later), as opposed to upstream's
 * answer (refused, invalid), which the local caller must see.
 */
export function isTransient(e: unknown): boolean {
  return (
    AgentError.is(e, 'UNAVAILABLE') || AgentError.is(e, 'DEADLINE_EXCEEDED') || AgentError.is(e, 'CANCELLED')
  );
}
