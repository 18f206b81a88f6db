import { Metadata, connectivityState } from '@grpc/grpc-js';
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
import type { ClientToken, TokenSigner } from '../../api/token/index.js';
import { AgentError } from '../../errors/index.js';
import type { Clock } from '../../host/index.js';
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
  /** The clock the signer dates its tokens with (for reusing one while it is young). */
  readonly clock: Clock;
  /**
   * Send one token on every call while more than half of its life is left (default true); false:
   * a fresh token per call, as NSM's clients do (the benchmark's before/after).
   */
  readonly reuseTokens?: boolean;
  readonly tuning?: Partial<ClientTuning>;
  /** Hears the round-trip time of every unary call upstream (for /metrics). */
  readonly onRoundTrip?: (method: string, seconds: number, ok: boolean) => void;
}

/**
 * One channel to the upstream registry, calling it as NSM's registry clients do: every
 * Register/Unregister carries an `nsm-client-token` and a first-call `path`, so upstream's default
 * policies accept us as the first hop and the name is owned by the agent's SPIFFE ID.
 * Keepalive comes from the client tuning (30 s ping, 10 s timeout), so a half-open TCP connection
 * fails the open watch streams instead of leaving them silent forever (R26).
 *
 * The token is minted once and sent on every call while more than half of its life is left (5 of a
 * default 10 min): an ES256 signature per refresh was most of an idle agent's registry CPU (271
 * exposes: ~7 Registers/s). Upstream sees the same claims it would see on a fresh token, and a
 * registration's expiration is min(token exp, upstream's default of 1 min), unchanged while 5 min of
 * the token are left. A renewed SVID dials a new UpstreamRegistry, so no token outlives its key.
 *
 * `ready` waits for the channel itself to reconnect instead of polling it with waitForReady windows:
 * a 5 s window that ended while grpc-js's backoff (up to 30 s) still ran cost a proxy backoff sleep
 * (up to 30 s) more, which is where ~45 s after a 60 s outage went.
 */
export class UpstreamRegistry {
  readonly #options: UpstreamRegistryOptions;
  readonly #conn: GrpcConnection;
  #token: { readonly value: ClientToken; readonly reuseUntilMs: number } | undefined;
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

  /** True when the channel is connected now. */
  isReady(): boolean {
    return this.#conn.channel.getConnectivityState(false) === connectivityState.READY;
  }

  /**
   * Resolves once the channel is READY; rejects with DEADLINE_EXCEEDED after `timeoutMs` (none: no
   * deadline), UNAVAILABLE once the channel is closed, or with the signal's reason. It watches the
   * channel's state (no polling) and kicks it out of IDLE, so grpc-js keeps reconnecting with its
   * own jittered backoff while this waits.
   */
  ready(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    const channel = this.#conn.channel;
    const url = this.#conn.url;
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (e?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (e === undefined) resolve();
        else reject(e);
      };
      const aborted = (): Error =>
        signal.reason instanceof Error
          ? signal.reason
          : new AgentError('CANCELLED', 'stopped waiting for upstream', {
              hint: 'the registry proxy is stopping (agent shutdown or a renewed SVID); nothing to do',
            });
      const onAbort = (): void => {
        settle(aborted());
      };
      const closed = (): void =>
        settle(
          new AgentError('UNAVAILABLE', `connection to ${url} is closed`, {
            hint: 'the proxy closed this client (shutdown or a renewed SVID); a new one reconnects on its own',
          }),
        );
      const check = (): void => {
        if (settled) return;
        let state: connectivityState;
        try {
          state = channel.getConnectivityState(true);
        } catch {
          closed();
          return;
        }
        if (state === connectivityState.READY) {
          settle();
          return;
        }
        if (state === connectivityState.SHUTDOWN) {
          closed();
          return;
        }
        try {
          // A watcher left behind by an abort ends with the channel's next change or close().
          channel.watchConnectivityState(state, deadline, (err) => {
            if (!err) check();
            else
              settle(
                new AgentError('DEADLINE_EXCEEDED', `could not connect to ${url} within ${timeoutMs} ms`, {
                  hint: 'check that the control server runs and listens there, and that both sides trust the same bundle',
                }),
              );
          });
        } catch {
          closed();
        }
      };
      if (signal.aborted) {
        settle(aborted());
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  #metadata(): Metadata {
    const md = new Metadata();
    writeClientToken(md, this.#clientToken());
    md.set(PATH_METADATA_KEY, FIRST_PATH);
    return md;
  }

  #clientToken(): ClientToken {
    const now = this.#options.clock.now();
    const kept = this.#token;
    if (kept !== undefined && now < kept.reuseUntilMs) return kept.value;
    const value = this.#options.signer.mint({ spiffeId: this.#options.spiffeId });
    if (this.#options.reuseTokens !== false) {
      this.#token = { value, reuseUntilMs: now + (value.expiresAtMs - now) / 2 };
    }
    return value;
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
