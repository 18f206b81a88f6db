import { create } from '@bufbuild/protobuf';
import type { Connection, ConnectionEvent } from '../../api/index.js';
import { ConnectionEventType, MonitorScopeSelectorSchema, State } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import type { Clock, TimerHandle } from '../../host/clock.js';
import type { Random } from '../../host/random.js';
import type { Logger } from '../../log/logger.js';
import { eventFactoryOf } from '../begin/event-factory.js';
import type { EventFactory } from '../begin/event-factory.js';
import type { ChainElement } from '../core/element.js';
import type { HealBackoff, HealEvent, HealOptions } from './options.js';

const defaultBackoff: HealBackoff = Object.freeze({ initialMs: 100, maxMs: 1_000 });
const defaultReselectAfter = 3;
const defaultMaxConcurrentHeals = 32;

/** One remote's monitor stream as heal sees it, for status output. */
export interface HealRemoteStatus {
  readonly url: string;
  /** The stream delivered its INITIAL_STATE_TRANSFER and has not failed since. */
  readonly live: boolean;
  readonly connections: number;
}

/** The heal element, with a view of its state for status and metrics. */
export interface HealClient extends ChainElement {
  remotes(): HealRemoteStatus[];
}

interface Env {
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
}

/** What a connection knows of its remote. */
interface RemoteView {
  readonly url: string;
  readonly env: Env;
  readonly live: boolean;
  enqueue(t: Tracked, reason: string): void;
}

/** One connection heal watches. */
interface Tracked {
  readonly id: string;
  events: EventFactory;
  remote: RemoteView;
  /** A heal re-request is running; never two at once. */
  inFlight: boolean;
  /** Waiting for a re-request slot of its remote. */
  queued: boolean;
  /** Another reason to re-request arrived while one was running: run once more after it. */
  again: boolean;
  /** Failed heal re-requests in a row. */
  failures: number;
  retry: TimerHandle | undefined;
  /** Reported `lost` and not healed since. */
  lost: boolean;
}

/**
 * heal client (NSM sdk `heal`; nsm-api.md §4.6), on the hop that calls a remote agent. For every
 * remote URL that connections go to, heal keeps ONE `MonitorConnections` stream, selecting the
 * connections that pass through this hop (`{path_segments: [{name: selfName}]}`), opened with the
 * first connection to the URL and ended with the last.
 *
 * - The stream fails or ends (not cancelled by heal): every connection to the URL is `lost`; heal
 *   resubscribes with full-jitter backoff, and once the new stream delivers INITIAL_STATE_TRANSFER it
 *   re-requests each of them (a restarted remote forgot them; the same path makes it rebuild them).
 * - The remote reports a connection DOWN, or DELETEs one we still hold: it is re-requested.
 * - A failed re-request is retried with backoff; after `reselectAfterFailures` in a row, with
 *   reselect (another endpoint). Re-requests go through begin's EventFactory, one at a time per
 *   connection and at most `maxConcurrentHeals` at once per remote (a restarted agent with thousands
 *   of connections is not hit by thousands of Requests at once); closing a connection stops
 *   everything for it.
 */
export function healClient(options: HealOptions): HealClient {
  const backoff = options.backoff ?? defaultBackoff;
  const reselectAfter = options.reselectAfterFailures ?? defaultReselectAfter;
  const maxConcurrentHeals = Math.max(1, options.maxConcurrentHeals ?? defaultMaxConcurrentHeals);
  const selector = create(MonitorScopeSelectorSchema, { pathSegments: [{ name: options.selfName }] });
  const remotes = new Map<string, Remote>();
  const tracked = new Map<string, Tracked>();
  // One listener for every connection (begin keeps it once per connection): tracking ends when
  // begin marks the connection closed. The map only where the tracked id is not begin's.
  const idOf = new WeakMap<EventFactory, string>();
  const onClosed = (events: EventFactory): void => {
    const current = tracked.get(idOf.get(events) ?? events.id);
    if (current?.events === events) untrack(current);
  };

  const delay = (env: Env, attempt: number): number =>
    Math.floor(env.random.float() * Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30)));

  const report = (kind: HealEvent['kind'], t: Tracked, error?: unknown): void => {
    try {
      options.onEvent?.({
        kind,
        connectionId: t.id,
        url: t.remote.url,
        ...(error === undefined ? {} : { error }),
      });
    } catch (e: unknown) {
      t.remote.env.log.warn({ err: e }, 'heal onEvent callback threw; ignored');
    }
  };

  /**
   * Asks for a re-request of `t`: queued on its remote (at most `maxConcurrentHeals` run at once per
   * remote), or, when one is already running, run once more after it.
   */
  function heal(t: Tracked, reason: string): void {
    if (t.events.state === 'closed' || tracked.get(t.id) !== t) return;
    if (t.inFlight) {
      t.again = true;
      return;
    }
    if (t.queued) return;
    t.retry?.cancel();
    t.retry = undefined;
    t.queued = true;
    t.remote.enqueue(t, reason);
  }

  /** Runs one re-request of `t`; never rejects. */
  async function reRequest(t: Tracked, reason: string): Promise<void> {
    if (t.events.state === 'closed' || tracked.get(t.id) !== t) return;
    t.inFlight = true;
    const reselect = t.failures >= reselectAfter;
    const { log } = t.remote.env;
    log.info({ connId: t.id, url: t.remote.url, reason, reselect }, 'heal: re-requesting the connection');
    const events = t.events;
    try {
      await events.request({ reselect });
    } catch (e: unknown) {
      t.inFlight = false;
      if (events.state === 'closed') return;
      t.failures++;
      report('heal-failed', t, e);
      if (t.again) {
        t.again = false;
        heal(t, 'asked again while re-requesting');
        return;
      }
      // While the stream is down, the resubscribe re-requests everything once the remote is back.
      if (!t.remote.live) return;
      const wait = delay(t.remote.env, t.failures - 1);
      log.warn(
        { connId: t.id, url: t.remote.url, err: e, failures: t.failures, retryInMs: wait },
        'heal: re-request failed; retrying',
      );
      t.retry = t.remote.env.clock.setTimer(wait, () => {
        t.retry = undefined;
        heal(t, `retry after ${t.failures} failure(s)`);
      });
      return;
    }
    t.inFlight = false;
    // Closed meanwhile: begin skipped the request, nothing was healed.
    if (events.state !== 'established') return;
    t.failures = 0;
    t.lost = false;
    report('healed', t);
    if (t.again) {
      t.again = false;
      heal(t, 'asked again while re-requesting');
    }
  }

  /** One remote URL: its monitor stream and the connections that go there. */
  class Remote implements RemoteView {
    readonly conns = new Map<string, Tracked>();
    readonly #stop = new AbortController();
    /** Connections waiting for a re-request slot, each at most once. */
    readonly #waiting: { t: Tracked; reason: string }[] = [];
    #active = 0;
    live = false;

    constructor(
      readonly url: string,
      readonly env: Env,
    ) {}

    start(): void {
      this.#run().catch((e: unknown) => {
        this.env.log.error({ err: e, url: this.url }, 'heal: the monitor loop failed');
      });
    }

    enqueue(t: Tracked, reason: string): void {
      this.#waiting.push({ t, reason });
      this.#pump();
    }

    #pump(): void {
      while (this.#active < maxConcurrentHeals) {
        const item = this.#waiting.shift();
        if (!item) return;
        item.t.queued = false;
        // Moved to another remote while waiting: it queues there instead.
        if (item.t.remote !== this) {
          heal(item.t, item.reason);
          continue;
        }
        this.#active++;
        void reRequest(item.t, item.reason).finally(() => {
          this.#active--;
          this.#pump();
        });
      }
    }

    /** Drops queued re-requests (the remote is gone; the resync queues them again). */
    #dropQueue(): void {
      for (const { t } of this.#waiting) t.queued = false;
      this.#waiting.length = 0;
    }

    stop(): void {
      this.#dropQueue();
      this.#stop.abort(new AgentError('CANCELLED', `no connection to ${this.url} is left to heal`));
    }

    async #run(): Promise<void> {
      const signal = this.#stop.signal;
      // A function, not the property: the compiler would take `aborted` as fixed inside the loop.
      const stopped = (): boolean => signal.aborted;
      const { log, clock } = this.env;
      let attempt = 0;
      let resync = false;
      while (!stopped()) {
        let error: unknown;
        try {
          for await (const event of options.subscribe(this.url, selector, signal)) {
            if (stopped()) break;
            if (event.type === ConnectionEventType.INITIAL_STATE_TRANSFER) {
              attempt = 0;
              this.live = true;
              if (resync) {
                resync = false;
                log.info(
                  { url: this.url, connections: this.conns.size },
                  'heal: the remote is back; re-requesting its connections',
                );
                for (const t of [...this.conns.values()]) heal(t, 'the remote is back');
                continue;
              }
            }
            this.#onEvent(event);
          }
          error = new AgentError('UNAVAILABLE', `the monitor stream from ${this.url} ended`);
        } catch (e: unknown) {
          error = e;
        }
        if (stopped()) return;
        this.live = false;
        this.#dropQueue();
        if (!resync) {
          resync = true;
          log.warn(
            { url: this.url, err: error, connections: this.conns.size },
            'heal: lost the monitor stream of the remote; its connections are re-requested once it is back',
          );
          for (const t of this.conns.values()) {
            t.retry?.cancel();
            t.retry = undefined;
            if (!t.lost) {
              t.lost = true;
              report('lost', t, error);
            }
          }
        } else {
          log.debug({ url: this.url, err: error }, 'heal: resubscribing failed');
        }
        try {
          await clock.sleep(delay(this.env, attempt++), signal);
        } catch {
          return;
        }
      }
    }

    /** UPDATE with state DOWN, or DELETE, of a connection we hold: re-request it. */
    #onEvent(event: ConnectionEvent): void {
      const deleted = event.type === ConnectionEventType.DELETE;
      for (const conn of Object.values(event.connections)) {
        if (!deleted && conn.state !== State.DOWN) continue;
        for (const t of this.#ours(conn)) {
          if (t.events.state !== 'established' || closing.has(t.id)) continue;
          heal(t, deleted ? 'the remote deleted it' : 'the remote reports it down');
        }
      }
    }

    /** The tracked connections an event's connection belongs to: by our segment's id in its path. */
    #ours(conn: Connection): Tracked[] {
      const out: Tracked[] = [];
      for (const s of conn.path?.pathSegments ?? []) {
        if (s.name !== options.selfName) continue;
        const t = this.conns.get(s.id);
        if (t) out.push(t);
      }
      return out;
    }
  }

  /** Connections heal has seen a Close for, until they are untracked or requested again. */
  const closing = new Set<string>();

  function untrack(t: Tracked): void {
    closing.delete(t.id);
    if (tracked.get(t.id) === t) tracked.delete(t.id);
    t.retry?.cancel();
    t.retry = undefined;
    const remote = remotes.get(t.remote.url);
    if (remote !== t.remote) return;
    remote.conns.delete(t.id);
    if (remote.conns.size === 0) {
      remotes.delete(remote.url);
      remote.stop();
    }
  }

  function remoteFor(url: string, env: Env): Remote {
    let remote = remotes.get(url);
    if (!remote) {
      remote = new Remote(url, env);
      remotes.set(url, remote);
      remote.start();
    }
    return remote;
  }

  function track(id: string, url: string, events: EventFactory, env: Env): void {
    let t = tracked.get(id);
    if (t && t.events !== events) {
      untrack(t);
      t = undefined;
    }
    if (!t) {
      const remote = remoteFor(url, env);
      t = {
        id,
        events,
        remote,
        inFlight: false,
        queued: false,
        again: false,
        failures: 0,
        retry: undefined,
        lost: false,
      };
      tracked.set(id, t);
      remote.conns.set(id, t);
    } else if (t.remote.url !== url) {
      // Reselected to another remote: watch that one instead.
      untrack(t);
      const remote = remoteFor(url, env);
      t.remote = remote;
      tracked.set(id, t);
      remote.conns.set(id, t);
    }
    if (events.id !== id) idOf.set(events, id);
    events.onClosed(onClosed);
  }

  return {
    name: 'heal',
    order: { requires: ['begin'] },
    async request(ctx, request, next) {
      // A request after our Close (a reselect) makes the connection ours to heal again.
      if (request.connection) closing.delete(request.connection.id);
      const url = options.remoteOf(ctx, request);
      const conn = await next.request(ctx, request);
      const id = conn.id;
      const events = eventFactoryOf(ctx);
      if (!events) {
        ctx.log.warn({ connId: id }, 'heal without begin before it: the connection is not healed');
        return conn;
      }
      const current = tracked.get(id);
      if (url === undefined) {
        if (current) untrack(current);
      } else {
        track(id, url, events, { clock: ctx.clock, random: ctx.random, log: ctx.log });
      }
      return conn;
    },
    // Tracking ends when begin marks the connection closed (its EventFactory signal), not here: a
    // reselect closes the old path through this element while the connection lives on. Once our
    // own Close is on its way, the remote's DELETE of it is its answer, not a loss to heal — also
    // when it arrives after the Close returned but before begin marks the connection closed.
    async close(ctx, connection, next) {
      if (tracked.has(connection.id)) closing.add(connection.id);
      await next.close(ctx, connection);
    },
    remotes: () =>
      [...remotes.values()].map((r) => ({ url: r.url, live: r.live, connections: r.conns.size })),
  };
}
