import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { describe } from '../errors/index.js';
import { systemClock } from '../host/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';

/** Where an outgoing connection of the agent stands (the `state` label of nsm_agent_connections). */
export type ConnectionState = 'connecting' | 'up' | 'healing' | 'failed';
export const connectionStates: readonly ConnectionState[] = ['connecting', 'up', 'healing', 'failed'];

/**
 * What happened to a connection heal watches (the `result` label of nsm_agent_heals_total): its
 * control plane was `lost`, then `healed`, or a heal `failed`; its data path stopped answering the
 * liveness ping (`dataplane_dead`) and it was `reselected` onto another endpoint or path.
 */
export type HealEvent = 'lost' | 'healed' | 'failed' | 'dataplane_dead' | 'reselected';
const healEvents: readonly HealEvent[] = ['lost', 'healed', 'failed', 'dataplane_dead', 'reselected'];

/**
 * The registry proxy's counters as the metrics need them: the shape of RegistryProxyMetrics
 * (src/registry/proxy/proxy-state.ts), declared here so metrics does not depend on registry.
 */
export interface RegistryProxyCounters {
  /** `up` makes nsm_agent_registry_upstream_up 1, anything else 0. */
  readonly upstreamState: string;
  readonly upstreamConnects: number;
  readonly upstreamLosses: number;
  readonly localEndpoints: number;
  readonly localServices: number;
  readonly pendingUpstream: number;
  readonly registrations: number;
  readonly queued: number;
  readonly refreshes: number;
  readonly refreshFailures: number;
  readonly restored: number;
  readonly localExpired: number;
  readonly cachedServices: number;
  readonly cachedEndpoints: number;
}

/**
 * What a collect callback reports at scrape time. Values are kept only when the callback as a whole
 * succeeds; the families fed this way (handshake age, SVID expiry, registry proxy) start empty at
 * every scrape, so a peer that went away or a source that failed leaves no stale sample.
 */
export interface CollectSink {
  /** Sets nsm_agent_connections for every state (a state left out is 0). */
  connections(counts: Readonly<Partial<Record<ConnectionState, number>>>): void;
  served(count: number): void;
  /** A WireGuard peer (public key) and its last handshake (ms since the epoch; 0 = never, omitted). */
  handshake(peer: string, lastHandshakeMs: number): void;
  /** The agent's X.509 SVID expires at `notAfterMs` (ms since the epoch). */
  svidExpiry(notAfterMs: number): void;
  registryProxy(counters: RegistryProxyCounters): void;
}

export type CollectFn = (sink: CollectSink) => void | Promise<void>;

export interface AgentMetricsOptions {
  readonly log: Logger;
  readonly clock?: Clock;
  /** A collect callback that has not finished by then counts as failed (default 5 s). */
  readonly collectTimeoutMs?: number;
  /** Process and Node.js metrics (CPU, memory, fds, event-loop lag, GC); default true. */
  readonly processMetrics?: boolean;
}

/** Latency buckets, 5 ms to 10 s, for connection setup and registry round trips. */
export const latencyBuckets: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const prefix = 'nsm_agent_';
const failureLogEveryMs = 60_000;

interface Source {
  readonly name: string;
  readonly fn: CollectFn;
  lastLoggedMs: number;
}

/** Gauge families taken from RegistryProxyCounters, with their help text. */
const registryGauges = {
  localEndpoints: ['registry_local_endpoints', 'Endpoints registered through this agent'],
  localServices: ['registry_local_services', 'Network services registered through this agent'],
  pendingUpstream: [
    'registry_pending_upstream',
    'Local registrations the upstream registry does not have yet (queued while it is unreachable)',
  ],
  cachedServices: ['registry_cached_services', 'Network services in the registry proxy cache'],
  cachedEndpoints: ['registry_cached_endpoints', 'Endpoints in the registry proxy cache'],
} as const;

/** Counter families taken from RegistryProxyCounters (absolute values, set at scrape time). */
const registryCounters = {
  upstreamConnects: ['registry_upstream_connects_total', 'Times the upstream registry session came up'],
  upstreamLosses: ['registry_upstream_losses_total', 'Times the upstream registry session was lost'],
  registrations: ['registry_registrations_total', 'Local Register calls forwarded and accepted upstream'],
  queued: ['registry_queued_total', 'Local Register calls accepted while upstream was unreachable'],
  refreshes: ['registry_refreshes_total', 'Upstream refreshes the registry proxy made on its own'],
  refreshFailures: ['registry_refresh_failures_total', 'Upstream refreshes that failed'],
  restored: ['registry_restored_total', 'Registrations sent again after the upstream session came back'],
  localExpired: [
    'registry_local_expired_total',
    'Local registrations dropped because their client stopped refreshing them',
  ],
} as const;

/** How often the event-loop delay histogram samples (ms). */
export const eventLoopSampleMs = 1000;

type RegistryGaugeKey = keyof typeof registryGauges;
type RegistryCounterKey = keyof typeof registryCounters;

/**
 * The agent's Prometheus metrics, on a registry of its own (never prom-client's global one). Events
 * are recorded as they happen (observeSetup, heal, observeRegistry); values that are cheaper to
 * read than to track (handshakes, SVID expiry, registry proxy counters) come from collect callbacks
 * run at scrape time. A failing or hanging callback never fails the scrape: its samples are left
 * out, nsm_agent_metrics_collect_errors_total{source} counts it, and it is logged at most once a minute.
 */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #sources: Source[] = [];
  #scraping: Promise<unknown> = Promise.resolve();

  readonly #connections: Gauge<'state'>;
  readonly #served: Gauge;
  readonly #setup: Histogram<'result'>;
  readonly #registryRoundTrip: Histogram<'method'>;
  readonly #handshakeAge: Gauge<'peer'>;
  readonly #svidExpiry: Gauge;
  readonly #heals: Counter<'result'>;
  readonly #upstreamUp: Gauge;
  readonly #registryGauges: Record<RegistryGaugeKey, Gauge>;
  readonly #registryCounters: Record<RegistryCounterKey, Counter>;
  readonly #collectErrors: Counter<'source'>;

  constructor(o: AgentMetricsOptions) {
    this.#log = o.log;
    this.#clock = o.clock ?? systemClock;
    this.#timeoutMs = o.collectTimeoutMs ?? 5_000;
    const registers = [this.registry];
    this.#connections = new Gauge({
      name: `${prefix}connections`,
      help: 'Connections the agent made (nsm-agent connect), by state',
      labelNames: ['state'],
      registers,
    });
    for (const state of connectionStates) this.#connections.set({ state }, 0);
    this.#served = new Gauge({
      name: `${prefix}served_connections`,
      help: 'Connections the agent serves for remote agents and local endpoints',
      registers,
    });
    this.#setup = new Histogram({
      name: `${prefix}connection_setup_seconds`,
      help: 'Time from a connection request to an established data plane, by result (ok, error)',
      labelNames: ['result'],
      buckets: [...latencyBuckets],
      registers,
    });
    this.#setup.zero({ result: 'ok' });
    this.#setup.zero({ result: 'error' });
    this.#registryRoundTrip = new Histogram({
      name: `${prefix}registry_roundtrip_seconds`,
      help: 'Round trip of calls to the upstream registry, by method',
      labelNames: ['method'],
      buckets: [...latencyBuckets],
      registers,
    });
    this.#handshakeAge = new Gauge({
      name: `${prefix}wireguard_handshake_age_seconds`,
      help: 'Seconds since the last WireGuard handshake, by peer public key (peers that never completed one are left out)',
      labelNames: ['peer'],
      registers,
    });
    this.#svidExpiry = new Gauge({
      name: `${prefix}svid_expiry_seconds`,
      help: "Seconds until the agent's X.509 SVID expires (negative once expired)",
      registers,
    });
    this.#svidExpiry.remove({});
    this.#heals = new Counter({
      name: `${prefix}heals_total`,
      help: 'Heal events: control plane lost, healed again, a heal failed; data path dead (liveness ping), reselected',
      labelNames: ['result'],
      registers,
    });
    for (const result of healEvents) this.#heals.inc({ result }, 0);
    this.#upstreamUp = new Gauge({
      name: `${prefix}registry_upstream_up`,
      help: 'Whether the registry proxy has a session with the upstream registry (1) or not (0)',
      registers,
    });
    this.#upstreamUp.remove({});
    this.#registryGauges = mapEntries(registryGauges, ([name, help]) => {
      const g = new Gauge({ name: `${prefix}${name}`, help, registers });
      g.remove({});
      return g;
    });
    this.#registryCounters = mapEntries(registryCounters, ([name, help]) => {
      const c = new Counter({ name: `${prefix}${name}`, help, registers });
      c.remove({});
      return c;
    });
    this.#collectErrors = new Counter({
      name: `${prefix}metrics_collect_errors_total`,
      help: 'Collect callbacks that failed or timed out during a scrape, by source; their samples were left out',
      labelNames: ['source'],
      registers,
    });
    // prom-client's default samples the event-loop delay with a 10-ms timer: 100 wake-ups a second,
    // ~1 % of a core in an agent that has nothing else to do. Sampled once a second, a 100-ms stall
    // still lands in one sample in ten (nodejs_eventloop_lag_p99/max show repeated stalls), and
    // nodejs_eventloop_lag_seconds is measured at every scrape as before.
    if (o.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: eventLoopSampleMs });
    }
  }

  /** The Content-Type of scrape(): Prometheus text format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  observeSetup(seconds: number, ok: boolean): void {
    if (Number.isFinite(seconds)) this.#setup.observe({ result: ok ? 'ok' : 'error' }, Math.max(0, seconds));
  }

  /** `method`: the registry call (register, unregister, find …); keep the set small and fixed. */
  observeRegistry(method: string, seconds: number): void {
    if (Number.isFinite(seconds)) this.#registryRoundTrip.observe({ method }, Math.max(0, seconds));
  }

  heal(event: HealEvent): void {
    this.#heals.inc({ result: event });
  }

  setConnections(counts: Readonly<Partial<Record<ConnectionState, number>>>): void {
    for (const state of connectionStates) this.#connections.set({ state }, finite(counts[state]));
  }

  setServed(count: number): void {
    this.#served.set(finite(count));
  }

  /**
   * Runs `fn` at every scrape; `name` labels its failures. Returns a function that removes it.
   * The callback may be async; it should be quick (it runs inside the scraper's request).
   */
  onCollect(name: string, fn: CollectFn): () => void {
    const source: Source = { name, fn, lastLoggedMs: -Infinity };
    this.#sources.push(source);
    return () => {
      const i = this.#sources.indexOf(source);
      if (i >= 0) this.#sources.splice(i, 1);
    };
  }

  /** Runs the collect callbacks and renders every metric in the Prometheus text format. */
  scrape(): Promise<string> {
    // One scrape at a time: each one resets and refills the collected families.
    const next = this.#scraping.then(() => this.#scrapeNow());
    this.#scraping = next.catch(() => undefined);
    return next;
  }

  async #scrapeNow(): Promise<string> {
    const results = await Promise.all(this.#sources.map((s) => this.#run(s)));
    this.#handshakeAge.reset();
    this.#svidExpiry.remove({});
    this.#upstreamUp.remove({});
    for (const g of Object.values(this.#registryGauges)) g.remove({});
    for (const c of Object.values(this.#registryCounters)) c.remove({});
    for (const writes of results) for (const w of writes) w();
    return this.registry.metrics();
  }

  /** The sink's writes, to apply if the callback succeeds; none when it fails. */
  async #run(source: Source): Promise<(() => void)[]> {
    const writes: (() => void)[] = [];
    const now = this.#clock.now();
    const sink: CollectSink = {
      connections: (counts) => writes.push(() => this.setConnections(counts)),
      served: (count) => writes.push(() => this.setServed(count)),
      handshake: (peer, lastHandshakeMs) => {
        if (lastHandshakeMs > 0 && Number.isFinite(lastHandshakeMs))
          writes.push(() => this.#handshakeAge.set({ peer }, Math.max(0, (now - lastHandshakeMs) / 1000)));
      },
      svidExpiry: (notAfterMs) => {
        if (Number.isFinite(notAfterMs)) writes.push(() => this.#svidExpiry.set((notAfterMs - now) / 1000));
      },
      registryProxy: (m) => writes.push(() => this.#setRegistry(m)),
    };
    let timer: { cancel(): void } | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => source.fn(sink)),
        new Promise<never>((_, reject) => {
          timer = this.#clock.setTimer(this.#timeoutMs, () => {
            reject(new Error(`did not finish within ${this.#timeoutMs} ms`));
          });
        }),
      ]);
      return writes;
    } catch (e: unknown) {
      this.#collectErrors.inc({ source: source.name });
      const at = this.#clock.now();
      if (at - source.lastLoggedMs >= failureLogEveryMs) {
        source.lastLoggedMs = at;
        this.#log.warn(
          { source: source.name, err: describe(e) },
          `metrics: collecting ${source.name} failed; its samples are left out of the scrape (logged at most once a minute)`,
        );
      }
      return [];
    } finally {
      timer?.cancel();
    }
  }

  #setRegistry(m: RegistryProxyCounters): void {
    this.#upstreamUp.set(m.upstreamState === 'up' ? 1 : 0);
    for (const key of Object.keys(this.#registryGauges) as RegistryGaugeKey[])
      this.#registryGauges[key].set(finite(m[key]));
    for (const key of Object.keys(this.#registryCounters) as RegistryCounterKey[])
      this.#registryCounters[key].inc(finite(m[key]));
  }
}

function finite(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) ? Math.max(0, n) : 0;
}

function mapEntries<K extends string, V, R>(o: Readonly<Record<K, V>>, f: (v: V) => R): Record<K, R> {
  return Object.fromEntries(Object.entries<V>(o).map(([k, v]) => [k, f(v)])) as Record<K, R>;
}
