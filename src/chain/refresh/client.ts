import type { Connection } from '../../api/index.js';
import { timestampToMs } from '../../api/index.js';
import type { Clock } from '../../host/clock.js';
import type { Logger } from '../../log/logger.js';
import { eventFactoryOf } from '../begin/event-factory.js';
import type { EventFactory } from '../begin/event-factory.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import { TimerQueue } from '../core/timer-queue.js';
import type { RefreshOptions } from './options.js';

const defaultRetryMs = 200;

/** A connection's next refresh. */
interface Due {
  readonly events: EventFactory;
  readonly expiresAtMs: number;
  readonly clock: Clock;
  readonly log: Logger;
}

/**
 * refresh client (nsm-api.md §4.4; only in the NSC chain): after each successful Request, Request
 * again before any hop's token runs out — at min(expires − now) over all path segments, times
 * 1/3 for a one-segment path, else 0.2 + 0.2 × index / segments (20 % for a client at index 0).
 * A failed refresh is retried every 200 ms while the earliest token is still valid; Close stops it.
 * Refreshes go through begin's EventFactory (serialised with everything else for the connection).
 */
export function refreshClient(options: RefreshOptions = {}): ChainElement {
  const retryMs = options.retryMs ?? defaultRetryMs;
  // One clock timer for all connections; an entry keeps what a refresh needs, not the request's context.
  const timers: TimerQueue<Due> = new TimerQueue<Due>((id, due) => {
    const { events, expiresAtMs, clock, log } = due;
    events.request().catch((e: unknown) => {
      if (events.state === 'closed') return;
      const left = expiresAtMs - clock.now();
      if (left <= retryMs) {
        log.warn({ connId: id, err: e }, 'refresh failed and the tokens run out: giving up');
        return;
      }
      log.warn({ connId: id, err: e, retryMs }, 'refresh failed; retrying');
      timers.set(clock, id, retryMs, due);
    });
  });
  // One listener for every connection (see timeout); the map only where ids differ.
  const idOf = new WeakMap<EventFactory, string>();
  const onClosed = (events: EventFactory): void => timers.delete(idOf.get(events) ?? events.id);

  function schedule(ctx: ChainContext, events: EventFactory, conn: Connection): void {
    const id = conn.id;
    timers.delete(id);
    const plan = refreshPlan(conn, ctx.clock.now());
    if (!plan) {
      ctx.log.warn({ connId: id }, 'the returned path carries no expiry: the connection is not refreshed');
      return;
    }
    const due: Due = { events, expiresAtMs: plan.expiresAtMs, clock: ctx.clock, log: ctx.log };
    timers.set(ctx.clock, id, plan.delayMs, due);
    if (events.id !== id) idOf.set(events, id);
    events.onClosed(onClosed);
  }

  return {
    name: 'refresh',
    order: { requires: ['updatepath', 'begin'] },
    async request(ctx, request, next) {
      const conn = await next.request(ctx, request);
      const events = eventFactoryOf(ctx);
      if (events) schedule(ctx, events, conn);
      else ctx.log.warn({ connId: conn.id }, 'refresh without begin before it: not refreshing');
      return conn;
    },
    async close(ctx, connection, next) {
      timers.delete(connection.id);
      await next.close(ctx, connection);
    },
  };
}

export interface RefreshPlan {
  /** The earliest expiry over all segments. */
  readonly expiresAtMs: number;
  /** When to refresh, from now. */
  readonly delayMs: number;
}

/** When to refresh `conn` (sdk refresh client); undefined when no segment has an expiry. */
export function refreshPlan(conn: Connection, nowMs: number): RefreshPlan | undefined {
  const segments = conn.path?.pathSegments ?? [];
  let earliest = Infinity;
  for (const s of segments) if (s.expires) earliest = Math.min(earliest, timestampToMs(s.expires));
  if (earliest === Infinity) return undefined;
  const index = conn.path?.index ?? 0;
  const scale = segments.length === 1 ? 1 / 3 : 0.2 + (0.2 * index) / segments.length;
  return { expiresAtMs: earliest, delayMs: Math.max(0, Math.floor((earliest - nowMs) * scale)) };
}
