import { Metadata } from '@grpc/grpc-js';
import {
  NetworkServiceEndpointRegistryService,
  NetworkServiceEndpointSchema,
  NetworkServiceRegistryService,
  NetworkServiceSchema,
  clone,
  timestampToMs,
  toTimestamp,
} from '../../api/index.js';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/index.js';
import { defaultClientTuning, implement } from '../../api/grpc/index.js';
import type { CallContext, ClientTuning, ServiceRegistration } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import type { Clock, Random, TimerHandle } from '../../host/index.js';
import type { Logger } from '../../log/index.js';
import { matchNetworkService, matchNetworkServiceEndpoint } from '../match.js';
import { OMIT_RENEWALS_METADATA_KEY } from '../renewals.js';
import { DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import {
  DEFAULT_LOCAL_EXPIRATION_MS,
  DEFAULT_PROXY_CALL_TIMEOUT_MS,
  DEFAULT_PROXY_WATCH_BACKLOG,
  DEFAULT_RECONNECT_SPREAD_MS,
  UPSTREAM_MAX_RECONNECT_BACKOFF_MS,
  UPSTREAM_STATUS_HEADER,
} from './options.js';
import type { RegistryProxyOptions } from './options.js';
import { RecordCache, follow } from './record-cache.js';
import type { Counter, RegistryProxyMetrics, UpstreamState } from './proxy-state.js';
import { serveFind } from './serve-find.js';
import type { FindChange } from './serve-find.js';
import { UpstreamRegistry, isTransient } from './upstream-registry.js';

interface LocalEndpoint {
  /** As the local client sent it, with its own (local) URL. */
  readonly nse: NetworkServiceEndpoint;
  readonly localExpiresAtMs: number;
  upstream: 'pending' | 'registered';
  timer: TimerHandle | undefined;
  /** When the timer is a refresh (not a retry or the local expiry): its due time, for batching. */
  refreshAtMs: number | undefined;
  retryAttempt: number;
}

/**
 * A refresh that is due takes along every other local endpoint whose refresh is due within this
 * long, all sent at once: 271 exposes refreshed one by one, each on its own timer, cost the agent
 * ~2.5x the CPU per Register of the same calls in flight together (bench/registry.ts --refresh). An
 * endpoint is refreshed at most this much before its 2/3 point (35-40 s of upstream's 60 s), and
 * after one such round its refreshes fall due together.
 */
const REFRESH_BATCH_WINDOW_MS = 5_000;
/** Registrations sent again together after a reconnect. */
const RESTORE_IN_FLIGHT = 64;

interface LocalService {
  readonly ns: NetworkService;
  upstream: 'pending' | 'registered';
}

/**
 * The agent's registry proxy (issue 5; NSM nsmgr's registry chain with `localbypass`). Local
 * callers (NSEs, the nsmgr) use it on a unix socket as they would use a registry; it forwards to
 * ONE upstream registry and keeps working while that upstream is away:
 *
 * - Register: the NSE's URL becomes the agent's public URL upstream, the local URL is kept for the
 *   nsmgr; the agent refreshes upstream at 2/3 of the expiration upstream returned, for as long as
 *   the local client keeps its own (local) registration alive.
 * - Upstream unreachable at Register: accepted and queued (answer header `nsm-agent-upstream:
 *   queued`, expiration = the local lease), sent once upstream is back. Upstream refusals are passed on.
 * - Find: served from a cache fed by one upstream watch per kind; local endpoints get their local
 *   URL back, other entries with the agent's URL are suppressed. Answers with the last known state
 *   while upstream is down (endpoints past their expiration are left out).
 * - Upstream lost: re-subscribe as soon as the channel reconnects (see #connected); when back, every
 *   local registration is sent again, so a control server that restarted empty has them within
 *   seconds of listening again (R19).
 */
export class RegistryProxy {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #options: RegistryProxyOptions;
  readonly #backoff: BackoffOptions;
  readonly #localExpirationMs: number;
  readonly #callTimeoutMs: number;
  readonly #maxWatchBacklog: number;
  readonly #reconnectSpreadMs: number;
  readonly #nsCache = new RecordCache<NetworkService>();
  readonly #nseCache = new RecordCache<NetworkServiceEndpoint>({ indexBy: (r) => r.networkServiceNames });
  /**
   * When each cached upstream endpoint was last heard of, and the registration period upstream gave
   * it then (its expiration_time minus that instant): what #listedUntil() lists it by, since
   * upstream does not send us its renewals.
   */
  readonly #nseHeard = new Map<string, { readonly atMs: number; readonly periodMs: number }>();
  /** When the last upstream session that was up ended; undefined while up (and before the first). */
  #lostAtMs: number | undefined;
  readonly #endpoints = new Map<string, LocalEndpoint>();
  readonly #services = new Map<string, LocalService>();
  /** Unregisters upstream could not take yet, sent when it is back. */
  readonly #unregisterNse = new Map<string, NetworkServiceEndpoint>();
  readonly #unregisterNs = new Map<string, NetworkService>();
  readonly #counters: Record<Counter, number> = {
    upstreamConnects: 0,
    upstreamLosses: 0,
    registrations: 0,
    queued: 0,
    refreshes: 0,
    refreshFailures: 0,
    restored: 0,
    localExpired: 0,
  };
  readonly #stop = new AbortController();
  #state: UpstreamState = { kind: 'idle' };
  #upstream: UpstreamRegistry | undefined;
  #identity: Pick<RegistryProxyOptions, 'credentials' | 'signer'>;
  /** Aborting it ends the current upstream session (its watch streams). */
  #session: AbortController | undefined;
  #loop: Promise<void> | undefined;

  /** The two registry services for startServer (serve them on the agent's local unix socket). */
  readonly services: readonly ServiceRegistration[];

  constructor(options: RegistryProxyOptions) {
    this.#options = options;
    this.#identity = { credentials: options.credentials, signer: options.signer };
    this.#clock = options.clock;
    this.#random = options.random;
    this.#log = options.log.child({ subsystem: 'registry-proxy', upstream: options.upstreamUrl });
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#localExpirationMs = options.localExpirationMs ?? DEFAULT_LOCAL_EXPIRATION_MS;
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_PROXY_CALL_TIMEOUT_MS;
    this.#maxWatchBacklog = options.maxWatchBacklog ?? DEFAULT_PROXY_WATCH_BACKLOG;
    this.#reconnectSpreadMs = options.reconnectSpreadMs ?? DEFAULT_RECONNECT_SPREAD_MS;
    this.services = [this.#nseService(), this.#nsService()];
    this.#nseCache.subscribe((r, deleted) => {
      if (deleted) {
        this.#nseHeard.delete(r.name);
        return;
      }
      const atMs = this.#clock.now();
      const exp = r.expirationTime ? timestampToMs(r.expirationTime) : atMs;
      this.#nseHeard.set(r.name, { atMs, periodMs: Math.max(0, exp - atMs) });
    });
  }

  /** Dials upstream and starts the watches; returns at once (upstream may well be down). */
  start(): void {
    if (this.#loop) return;
    this.#upstream = this.#dial();
    this.#loop = this.#run();
  }

  /**
   * A renewed SVID (identity renews it well before expiry): the connection in use is closed and
   * the next session dials with the new certificate and signs with the new key. The watches see a
   * short loss and resync; registrations are sent again as after any reconnect.
   */
  updateIdentity(identity: Pick<RegistryProxyOptions, 'credentials' | 'signer'>): void {
    this.#identity = identity;
    if (!this.#loop || this.#stop.signal.aborted) return;
    const old = this.#upstream;
    this.#upstream = this.#dial();
    // grpc-js lets calls in flight on a closed channel run on; end the session's watches ourselves.
    this.#session?.abort();
    old?.close();
  }

  #dial(): UpstreamRegistry {
    return new UpstreamRegistry({
      url: this.#options.upstreamUrl,
      credentials: this.#identity.credentials,
      signer: this.#identity.signer,
      spiffeId: this.#options.upstreamSpiffeId,
      callTimeoutMs: this.#callTimeoutMs,
      clock: this.#clock,
      tuning: upstreamTuning(this.#options.tuning),
      ...(this.#options.onRoundTrip ? { onRoundTrip: this.#options.onRoundTrip } : {}),
    });
  }

  /** Stops watching and refreshing. Upstream registrations are left to expire (the agent may be restarting). */
  async close(): Promise<void> {
    this.#stop.abort(new AgentError('CANCELLED', 'the registry proxy is closing'));
    this.#state = { kind: 'closed' };
    this.#session?.abort();
    for (const e of this.#endpoints.values()) e.timer?.cancel();
    this.#upstream?.close();
    await this.#loop;
  }

  #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  #isUp(): boolean {
    return this.#state.kind === 'up';
  }

  get state(): UpstreamState {
    return this.#state;
  }

  /** The local URL of a local endpoint (what the nsmgr dials), or undefined if it is not local. */
  localUrl(name: string): string | undefined {
    return this.#endpoints.get(name)?.nse.url;
  }

  metrics(): RegistryProxyMetrics {
    let pending = 0;
    for (const e of this.#endpoints.values()) if (e.upstream === 'pending') pending++;
    for (const s of this.#services.values()) if (s.upstream === 'pending') pending++;
    return {
      ...this.#counters,
      upstreamState: this.#state.kind,
      localEndpoints: this.#endpoints.size,
      localServices: this.#services.size,
      pendingUpstream: pending,
      cachedServices: this.#nsCache.size,
      cachedEndpoints: this.#nseCache.size,
    };
  }

  // ---- upstream session ---------------------------------------------------------------------

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#stop.signal.aborted) {
      const upstream = this.#upstream;
      if (!upstream) break;
      let error: string;
      const session = new AbortController();
      this.#session = session;
      try {
        await this.#connected(upstream, attempt, session.signal);
        this.#state = { kind: 'connecting', attempt };
        error = await this.#runSession(upstream, session.signal);
      } catch (e: unknown) {
        error = describe(e);
      } finally {
        session.abort();
      }
      if (this.#stopped()) break;
      // Only #runSession sets 'up'; a session that got there starts the backoff afresh.
      const wasUp = this.#isUp();
      if (wasUp) attempt = 0;
      if (wasUp) this.#counters.upstreamLosses++;
      if (wasUp) this.#lostAtMs = this.#clock.now();
      const retryInMs = fullJitterDelay(attempt, this.#random, this.#backoff);
      this.#state = { kind: 'down', sinceMs: this.#clock.now(), attempt, retryInMs, error };
      this.#log[wasUp ? 'warn' : 'debug'](
        { err: error, attempt, retryInMs },
        wasUp
          ? 'lost the upstream registry; serving local Find from the last known state'
          : 'upstream registry unreachable',
      );
      attempt++;
      try {
        await this.#clock.sleep(retryInMs, this.#stop.signal);
      } catch {
        break;
      }
    }
    this.#state = { kind: 'closed' };
  }

  /**
   * Resolves once the channel is READY. It reconnects by itself (grpc-js backoff, jittered, capped at
   * UPSTREAM_MAX_RECONNECT_BACKOFF_MS), so there is no deadline here: the session starts as soon as
   * upstream takes connections, not after the rest of a sleep or at the next poll. The state says
   * 'down' with the reason while it waits. If it had to wait (upstream was away), a uniform delay of
   * up to `reconnectSpreadMs` follows, so a fleet whose channels came back together does not list
   * and re-register at one instant (R24).
   */
  async #connected(upstream: UpstreamRegistry, attempt: number, signal: AbortSignal): Promise<void> {
    if (upstream.isReady()) return;
    if (this.#state.kind !== 'down') this.#state = { kind: 'connecting', attempt };
    try {
      await upstream.ready(signal, this.#callTimeoutMs);
    } catch (e: unknown) {
      if (!AgentError.is(e, 'DEADLINE_EXCEEDED')) throw e;
      if (this.#state.kind !== 'down') {
        this.#state = { kind: 'down', sinceMs: this.#clock.now(), attempt, retryInMs: 0, error: describe(e) };
        this.#log.debug({ err: describe(e) }, 'upstream registry unreachable; waiting for it');
      }
      await upstream.ready(signal);
    }
    const spreadMs = Math.floor(this.#random.float() * this.#reconnectSpreadMs);
    if (spreadMs > 0) await this.#clock.sleep(spreadMs, signal);
  }

  /**
   * One upstream session: watches first, then a listing of each kind to drop what vanished while we
   * were away, then "up" and the restore. Resolves with the reason it ended.
   */
  async #runSession(upstream: UpstreamRegistry, signal: AbortSignal): Promise<string> {
    this.#nsCache.beginResync();
    this.#nseCache.beginResync();
    const nsWatch = follow(
      upstream.ns.find({ networkService: {}, watch: true }, { signal }),
      (r) => r.networkService,
      this.#nsCache,
    );
    const omitRenewals = new Metadata();
    omitRenewals.set(OMIT_RENEWALS_METADATA_KEY, '1');
    const nseWatch = follow(
      upstream.nse.find({ networkServiceEndpoint: {}, watch: true }, { signal, metadata: omitRenewals }),
      (r) => r.networkServiceEndpoint,
      this.#nseCache,
    );
    const ended = Promise.race([nsWatch, nseWatch]);
    const listOptions = { signal, timeoutMs: this.#callTimeoutMs };
    const nsNames: string[] = [];
    for await (const r of upstream.ns.find({ networkService: {}, watch: false }, listOptions))
      if (r.networkService) nsNames.push(r.networkService.name);
    const nseNames: string[] = [];
    for await (const r of upstream.nse.find({ networkServiceEndpoint: {}, watch: false }, listOptions))
      if (r.networkServiceEndpoint) nseNames.push(r.networkServiceEndpoint.name);
    this.#nsCache.endResync(nsNames);
    this.#nseCache.endResync(nseNames);
    this.#state = { kind: 'up', sinceMs: this.#clock.now() };
    this.#lostAtMs = undefined;
    this.#counters.upstreamConnects++;
    this.#log.info(
      { services: this.#nsCache.size, endpoints: this.#nseCache.size },
      'upstream registry watch is up',
    );
    this.#restore(upstream).catch((e: unknown) => {
      this.#log.warn({ err: describe(e) }, 'restoring local registrations upstream stopped early');
    });
    return ended;
  }

  /** Everything local, sent again: upstream may have restarted with an empty store. */
  async #restore(upstream: UpstreamRegistry): Promise<void> {
    for (const [name, ns] of this.#unregisterNs) {
      if (!(await this.#tryUnregister(() => upstream.unregisterNs(ns), name))) return;
      this.#unregisterNs.delete(name);
    }
    for (const [name, nse] of this.#unregisterNse) {
      if (!(await this.#tryUnregister(() => upstream.unregisterNse(nse), name))) return;
      this.#unregisterNse.delete(name);
    }
    for (const local of [...this.#services.values()]) {
      if (this.#state.kind !== 'up') return;
      try {
        await upstream.registerNs(local.ns);
        local.upstream = 'registered';
        this.#counters.restored++;
      } catch (e: unknown) {
        this.#log.warn(
          { ns: local.ns.name, err: describe(e) },
          'could not restore a network service upstream',
        );
        if (isTransient(e)) return;
      }
    }
    // RESTORE_IN_FLIGHT at a time: calls in flight together cost the agent far less CPU each than
    // one after another (see REFRESH_BATCH_WINDOW_MS), and upstream sees a bounded burst.
    const endpoints = [...this.#endpoints];
    for (let i = 0; i < endpoints.length; i += RESTORE_IN_FLIGHT) {
      if (this.#state.kind !== 'up') return;
      const chunk = endpoints
        .slice(i, i + RESTORE_IN_FLIGHT)
        .filter(([name, local]) => this.#endpoints.get(name) === local);
      for (const r of await Promise.allSettled(
        chunk.map(([, local]) => this.#refreshEndpoint(upstream, local)),
      ))
        if (r.status === 'fulfilled' && r.value) this.#counters.restored++;
    }
  }

  /** True when upstream no longer has the record (unregistered now, or already gone). */
  async #tryUnregister(call: () => Promise<void>, name: string): Promise<boolean> {
    try {
      await call();
      return true;
    } catch (e: unknown) {
      if (AgentError.is(e, 'NOT_FOUND')) return true;
      this.#log.warn({ name, err: describe(e) }, 'could not send a queued unregister upstream');
      return !isTransient(e);
    }
  }

  // ---- local endpoints ----------------------------------------------------------------------

  /** The record as upstream should hold it: the agent's URL, upstream chooses the expiration and path. */
  #upstreamForm(nse: NetworkServiceEndpoint): NetworkServiceEndpoint {
    const out = clone(NetworkServiceEndpointSchema, nse);
    out.url = this.#options.publicUrl;
    out.expirationTime = undefined;
    out.pathIds = [];
    return out;
  }

  /**
   * Sends one local endpoint upstream and schedules what comes next (refresh, retry or local
   * expiry). Returns upstream's answer, or undefined if it failed (retry scheduled); throws
   * upstream's refusal (not reachability failures) only when `rethrow`.
   */
  async #refreshEndpoint(
    upstream: UpstreamRegistry,
    local: LocalEndpoint,
    rethrow = false,
  ): Promise<NetworkServiceEndpoint | undefined> {
    const name = local.nse.name;
    try {
      const answer = await upstream.registerNse(this.#upstreamForm(local.nse));
      if (this.#endpoints.get(name) !== local) return answer; // unregistered meanwhile
      local.upstream = 'registered';
      local.retryAttempt = 0;
      const upstreamExpiry = answer.expirationTime ? timestampToMs(answer.expirationTime) : undefined;
      const now = this.#clock.now();
      // NSM's refresh: at 2/3 of the time upstream gave us.
      const refreshIn =
        upstreamExpiry === undefined ? this.#localExpirationMs : ((upstreamExpiry - now) * 2) / 3;
      this.#schedule(local, refreshIn, true);
      return answer;
    } catch (e: unknown) {
      if (this.#endpoints.get(name) !== local) throw e;
      local.upstream = 'pending';
      if (rethrow && !isTransient(e)) throw e;
      this.#counters.refreshFailures++;
      // Transient while the session counts as up: retry with backoff; if the session is down, its
      // return restores everything anyway, and the timer below only enforces the local expiry.
      const retryIn = fullJitterDelay(local.retryAttempt++, this.#random, this.#backoff);
      this.#schedule(local, retryIn);
      this.#log.warn({ nse: name, err: describe(e), retryInMs: retryIn }, 'upstream refresh failed');
      return undefined;
    }
  }

  /** `refresh`: the timer is the endpoint's next upstream refresh (it may be batched with others). */
  #schedule(local: LocalEndpoint, inMs: number, refresh = false): void {
    local.timer?.cancel();
    local.refreshAtMs = undefined;
    if (this.#stop.signal.aborted) return;
    const now = this.#clock.now();
    const until = Math.max(0, local.localExpiresAtMs - now);
    const delay = Math.min(Math.max(0, inMs), until);
    if (refresh && delay < until) local.refreshAtMs = now + delay;
    local.timer = this.#clock.setTimer(delay, () => {
      this.#onTimer(local).catch((e: unknown) => {
        this.#log.warn({ nse: local.nse.name, err: describe(e) }, 'registration timer failed');
      });
    });
  }

  async #onTimer(local: LocalEndpoint): Promise<void> {
    const name = local.nse.name;
    if (this.#endpoints.get(name) !== local || this.#stop.signal.aborted) return;
    if (this.#clock.now() >= local.localExpiresAtMs) {
      this.#endpoints.delete(name);
      this.#counters.localExpired++;
      this.#log.info({ nse: name }, 'local endpoint did not refresh its registration; removing it upstream');
      await this.#forwardUnregisterNse(local.nse, local.upstream === 'registered');
      return;
    }
    local.refreshAtMs = undefined;
    const upstream = this.#upstream;
    if (this.#state.kind !== 'up' || !upstream) {
      local.upstream = 'pending';
      this.#schedule(local, Infinity);
      return;
    }
    // Every other refresh due soon goes along (REFRESH_BATCH_WINDOW_MS), all in flight together.
    const batch = [local];
    const horizon = this.#clock.now() + REFRESH_BATCH_WINDOW_MS;
    for (const other of this.#endpoints.values()) {
      if (other === local || other.refreshAtMs === undefined || other.refreshAtMs > horizon) continue;
      other.timer?.cancel();
      other.timer = undefined;
      other.refreshAtMs = undefined;
      batch.push(other);
    }
    for (const r of await Promise.allSettled(batch.map((e) => this.#refreshEndpoint(upstream, e))))
      if (r.status === 'fulfilled' && r.value) this.#counters.refreshes++;
  }

  /** Unregister upstream now if possible, else remember it for when upstream is back. */
  async #forwardUnregisterNse(
    nse: NetworkServiceEndpoint,
    knownUpstream: boolean,
  ): Promise<'done' | 'queued'> {
    const form = this.#upstreamForm(nse);
    const upstream = this.#upstream;
    if (this.#state.kind === 'up' && upstream) {
      try {
        await upstream.unregisterNse(form);
        this.#unregisterNse.delete(nse.name);
        return 'done';
      } catch (e: unknown) {
        if (AgentError.is(e, 'NOT_FOUND')) return 'done';
        if (!isTransient(e)) throw e;
      }
    }
    if (knownUpstream || this.#state.kind !== 'up') this.#unregisterNse.set(nse.name, form);
    return 'queued';
  }

  /**
   * Registers a local endpoint in-process (the agent's own exposes), as a local Register call does:
   * `upstream` says whether the control server has it now or it is queued until it is reachable.
   */
  async registerEndpoint(
    request: NetworkServiceEndpoint,
  ): Promise<{ readonly nse: NetworkServiceEndpoint; readonly upstream: 'registered' | 'queued' }> {
    let upstream: 'registered' | 'queued' = 'queued';
    const nse = await this.#registerNse(request, (status) => (upstream = status));
    return { nse, upstream };
  }

  /** Unregisters a local endpoint in-process; `queued` when upstream will hear it once reachable. */
  async unregisterEndpoint(request: NetworkServiceEndpoint): Promise<'unregistered' | 'queued'> {
    let outcome: 'unregistered' | 'queued' = 'queued';
    await this.#unregisterNseLocal(request, (status) => (outcome = status));
    return outcome;
  }

  /** Registers a network service in-process (what a local NetworkService Register call does). */
  async registerService(
    request: NetworkService,
  ): Promise<{ readonly ns: NetworkService; readonly upstream: 'registered' | 'queued' }> {
    let upstream: 'registered' | 'queued' = 'queued';
    const ns = await this.#registerNs(request, (status) => (upstream = status));
    return { ns, upstream };
  }

  /** The endpoints a local Find (watch=false) with `template` would list. */
  findEndpoints(template: NetworkServiceEndpoint | undefined): NetworkServiceEndpoint[] {
    return this.#nseSnapshot(template);
  }

  /** The network services a local Find (watch=false) with `template` would list. */
  findServices(template: NetworkService | undefined): NetworkService[] {
    return this.#nsSnapshot(template);
  }

  async #registerNse(
    request: NetworkServiceEndpoint,
    status: (s: 'registered' | 'queued') => void,
  ): Promise<NetworkServiceEndpoint> {
    if (request.name === '' || request.url === '') {
      throw new AgentError('INVALID_ARGUMENT', 'a network service endpoint needs a name and a url', {
        hint: 'set name and url (the unix:// or tcp:// URL this endpoint serves on)',
      });
    }
    const now = this.#clock.now();
    const requested = request.expirationTime ? timestampToMs(request.expirationTime) : undefined;
    if (requested !== undefined && requested <= now) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `expiration_time ${new Date(requested).toISOString()} is not in the future`,
        {
          hint: 'leave expiration_time unset, or resend the value of the last response before it passes',
        },
      );
    }
    const localExpiresAtMs = requested ?? now + this.#localExpirationMs;
    const nse = clone(NetworkServiceEndpointSchema, request);
    nse.expirationTime = undefined;
    const previous = this.#endpoints.get(nse.name);
    previous?.timer?.cancel();
    const local: LocalEndpoint = {
      nse,
      localExpiresAtMs,
      upstream: previous?.upstream ?? 'pending',
      timer: undefined,
      refreshAtMs: undefined,
      retryAttempt: 0,
    };
    this.#endpoints.set(nse.name, local);
    this.#unregisterNse.delete(nse.name);

    const upstream = this.#upstream;
    let answer: NetworkServiceEndpoint | undefined;
    if (this.#state.kind === 'up' && upstream) {
      try {
        answer = await this.#refreshEndpoint(upstream, local, true);
      } catch (e: unknown) {
        // Upstream refused it: nothing is registered, locally either.
        if (this.#endpoints.get(nse.name) === local) {
          local.timer?.cancel();
          this.#endpoints.delete(nse.name);
        }
        throw e;
      }
    } else {
      this.#schedule(local, Infinity);
    }
    const out = clone(NetworkServiceEndpointSchema, answer ?? this.#upstreamForm(nse));
    out.expirationTime = toTimestamp(localExpiresAtMs);
    if (answer) {
      this.#counters.registrations++;
      status('registered');
    } else {
      this.#counters.queued++;
      status('queued');
      this.#log.info(
        { nse: nse.name, state: this.#state.kind },
        'upstream registry unreachable; registration queued',
      );
    }
    return out;
  }

  async #unregisterNseLocal(
    request: NetworkServiceEndpoint,
    status: (s: 'unregistered' | 'queued') => void,
  ): Promise<void> {
    const local = this.#endpoints.get(request.name);
    if (local) {
      local.timer?.cancel();
      this.#endpoints.delete(request.name);
    } else if (this.#state.kind !== 'up') {
      throw new AgentError(
        'UNAVAILABLE',
        `${request.name} is not registered through this agent and the upstream registry is unreachable`,
        {
          hint: 'retry when the control server is reachable',
        },
      );
    }
    const outcome = await this.#forwardUnregisterNse(local?.nse ?? request, local !== undefined);
    if (outcome === 'queued' && !local) {
      throw new AgentError('UNAVAILABLE', 'the upstream registry did not answer the unregister', {
        hint: 'retry the unregister',
      });
    }
    status(outcome === 'done' ? 'unregistered' : 'queued');
  }

  /**
   * Whether a cached upstream endpoint is listed at `now`, bringing its expiration_time up to date
   * when it is. Upstream does not send this proxy the renewals of an endpoint (it asked not to:
   * OMIT_RENEWALS_METADATA_KEY), only real changes and the delete when a registration runs out; so
   * while the watch is up an endpoint is alive for one registration period from now. While upstream
   * is down nothing tells us what expired: an endpoint is listed for one registration period from
   * when upstream was lost (its last renewal came at most that long before), or until its own
   * expiration_time when that is later (a registry that does send renewals).
   */
  #listed(r: NetworkServiceEndpoint, now: number): boolean {
    if (!r.expirationTime) return true;
    const exp = timestampToMs(r.expirationTime);
    const heard = this.#nseHeard.get(r.name);
    if (!heard) return exp > now;
    const from = this.#state.kind === 'up' ? now : (this.#lostAtMs ?? heard.atMs);
    const until = Math.max(exp, from + heard.periodMs);
    if (until <= now) return false;
    // Callers (discover) leave out endpoints past their expiration_time: keep it ahead of them.
    if (until - exp > heard.periodMs / 3) r.expirationTime = toTimestamp(until);
    return true;
  }

  /** Local view of an upstream record (localbypass): undefined = hide it from local callers. */
  #bypass(nse: NetworkServiceEndpoint): NetworkServiceEndpoint | undefined {
    if (nse.url !== this.#options.publicUrl) return nse;
    const local = this.#endpoints.get(nse.name);
    if (!local) return undefined;
    const out = clone(NetworkServiceEndpointSchema, nse);
    out.url = local.nse.url;
    return out;
  }

  /**
   * The cached endpoints that can match a Find (discover asks by name or by service), not every
   * endpoint in the mesh: a lookup costs the same with ten endpoints as with ten thousand.
   */
  #nseCandidates(name: string, service: string | undefined): Iterable<NetworkServiceEndpoint> {
    if (name !== '') {
      const one = this.#nseCache.get(name);
      return one ? [one] : [];
    }
    return service === undefined ? this.#nseCache.values() : this.#nseCache.withKey(service);
  }

  #nseSnapshot(template: NetworkServiceEndpoint | undefined): NetworkServiceEndpoint[] {
    const now = this.#clock.now();
    const out: NetworkServiceEndpoint[] = [];
    const name = template?.name ?? '';
    const service = template?.networkServiceNames[0];
    const candidates = this.#nseCandidates(name, service);
    for (const r of candidates) {
      if (!this.#listed(r, now)) continue;
      if (!matchNetworkServiceEndpoint(template, r)) continue;
      const seen = this.#bypass(r);
      if (seen) out.push(seen);
    }
    // Local endpoints upstream does not have (yet): local clients can still reach them.
    for (const local of this.#endpoints.values()) {
      if (name !== '' && local.nse.name !== name) continue;
      if (service !== undefined && !local.nse.networkServiceNames.includes(service)) continue;
      if (this.#nseCache.get(local.nse.name)) continue;
      const form = this.#upstreamForm(local.nse);
      form.expirationTime = toTimestamp(local.localExpiresAtMs);
      if (!matchNetworkServiceEndpoint(template, form)) continue;
      form.url = local.nse.url;
      out.push(form);
    }
    return out;
  }

  #nseService(): ServiceRegistration {
    return implement(NetworkServiceEndpointRegistryService, {
      register: (nse, ctx) => this.#registerNse(nse, (status) => sendStatus(ctx, status)),
      unregister: async (nse, ctx) => {
        await this.#unregisterNseLocal(nse, (status) => sendStatus(ctx, status));
        return {};
      },
      find: (query, stream, ctx) => {
        const template = query.networkServiceEndpoint;
        return serveFind<NetworkServiceEndpoint>({
          watch: query.watch,
          snapshot: () => this.#nseSnapshot(template),
          subscribe: (push) =>
            this.#nseCache.subscribe((r, deleted) => {
              if (!matchNetworkServiceEndpoint(template, r)) return;
              const seen = this.#bypass(r);
              if (seen) push({ record: seen, deleted });
              else if (deleted) push({ record: r, deleted });
            }),
          send: (c: FindChange<NetworkServiceEndpoint>) =>
            stream.send({ networkServiceEndpoint: c.record, deleted: c.deleted }),
          signal: ctx.signal,
          maxBacklog: this.#maxWatchBacklog,
        });
      },
    });
  }

  // ---- network services ---------------------------------------------------------------------

  async #registerNs(
    request: NetworkService,
    status: (s: 'registered' | 'queued') => void,
  ): Promise<NetworkService> {
    if (request.name === '') {
      throw new AgentError('INVALID_ARGUMENT', 'a network service needs a name', { hint: 'set name' });
    }
    const ns = clone(NetworkServiceSchema, request);
    const upstream = this.#upstream;
    let answer: NetworkService | undefined;
    if (this.#state.kind === 'up' && upstream) {
      try {
        answer = await upstream.registerNs(ns);
      } catch (e: unknown) {
        if (!isTransient(e)) throw e;
      }
    }
    this.#services.set(ns.name, { ns, upstream: answer ? 'registered' : 'pending' });
    this.#unregisterNs.delete(ns.name);
    if (answer) this.#counters.registrations++;
    else this.#counters.queued++;
    status(answer ? 'registered' : 'queued');
    return answer ?? ns;
  }

  #nsSnapshot(template: NetworkService | undefined): NetworkService[] {
    const byName = template?.name ? this.#nsCache.get(template.name) : undefined;
    const candidates = template?.name ? (byName ? [byName] : []) : [...this.#nsCache.values()];
    const out = candidates.filter((r) => matchNetworkService(template, r));
    for (const local of this.#services.values()) {
      if (template?.name && local.ns.name !== template.name) continue;
      if (!this.#nsCache.get(local.ns.name) && matchNetworkService(template, local.ns)) out.push(local.ns);
    }
    return out;
  }

  #nsService(): ServiceRegistration {
    return implement(NetworkServiceRegistryService, {
      register: (request, ctx) => this.#registerNs(request, (status) => sendStatus(ctx, status)),
      unregister: async (request, ctx) => {
        const known = this.#services.delete(request.name);
        const upstream = this.#upstream;
        let done = false;
        if (this.#state.kind === 'up' && upstream) {
          try {
            await upstream.unregisterNs(request);
            done = true;
          } catch (e: unknown) {
            if (AgentError.is(e, 'NOT_FOUND') && known) done = true;
            else if (!isTransient(e)) throw e;
          }
        }
        if (!done) {
          if (!known) {
            throw new AgentError(
              'UNAVAILABLE',
              `the upstream registry is unreachable; ${request.name} was not unregistered`,
              {
                hint: 'retry when the control server is reachable',
              },
            );
          }
          this.#unregisterNs.set(request.name, clone(NetworkServiceSchema, request));
        }
        const header = new Metadata();
        header.set(UPSTREAM_STATUS_HEADER, done ? 'unregistered' : 'queued');
        ctx.sendHeader(header);
        return {};
      },
      find: (query, stream, ctx) => {
        const template = query.networkService;
        return serveFind<NetworkService>({
          watch: query.watch,
          snapshot: () => this.#nsSnapshot(template),
          subscribe: (push) =>
            this.#nsCache.subscribe((r, deleted) => {
              if (matchNetworkService(template, r)) push({ record: r, deleted });
            }),
          send: (c: FindChange<NetworkService>) =>
            stream.send({ networkService: c.record, deleted: c.deleted }),
          signal: ctx.signal,
          maxBacklog: this.#maxWatchBacklog,
        });
      },
    });
  }
}

/**
 * The agent's client tuning with grpc-js's reconnect backoff capped (default 1 s -> 30 s, x1.6): the
 * proxy waits for the channel to reconnect by itself, so this cap bounds how long after upstream
 * returns the agent notices (R19); grpc-js jitters each delay by ±20 %.
 */
function upstreamTuning(tuning: Partial<ClientTuning> | undefined): Partial<ClientTuning> {
  const max = Math.min(
    tuning?.maxReconnectBackoffMs ?? defaultClientTuning.maxReconnectBackoffMs,
    UPSTREAM_MAX_RECONNECT_BACKOFF_MS,
  );
  const initial = Math.min(
    tuning?.initialReconnectBackoffMs ?? defaultClientTuning.initialReconnectBackoffMs,
    max,
  );
  return { ...tuning, initialReconnectBackoffMs: initial, maxReconnectBackoffMs: max };
}

/** Tells a local registrant whether upstream has its record yet (header nsm-agent-upstream). */
function sendStatus(ctx: CallContext, status: string): void {
  const header = new Metadata();
  header.set(UPSTREAM_STATUS_HEADER, status);
  ctx.sendHeader(header);
}
