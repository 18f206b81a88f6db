import type { Connection } from '../../api/index.js';
import { timestampToMs } from '../../api/index.js';
import type { TimerHandle } from '../../host/clock.js';
import { eventFactoryOf } from '../begin/event-factory.js';
import type { EventFactory } from '../begin/event-factory.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import type { RefreshOptions } from './options.js';

const defaultRetryMs = 200;

/**
 * refresh client (nsm-api.md §4.4; only in the NSC chain): after each successful Request, Request
 * again before any hop's token runs out — at min(expires − now) over all path segments, times
 * 1/3 for a one-segment path, else 0.2 + 0.2 × index / segments (20 % for a client at index 0).
 * A failed refresh is retried every 200 ms while the earliest token is still valid; Close stops it.
 * Refreshes go through begin's EventFactory (serialised with everything else for the connection).
 */
export function refreshClient(options: RefreshOptions = {}): ChainElement {
  const retryMs = options.retryMs ?? defaultRetryMs;
  const timers = new Map<string, TimerHandle>();
  const watched = new WeakSet<AbortSignal>();

  function cancel(id: string): void {
    timers.get(id)?.cancel();
    timers.delete(id);
  }

  function schedule(ctx: ChainContext, events: EventFactory, conn: Connection): void {
    const id = conn.id;
    cancel(id);
    const plan = refreshPlan(conn, ctx.clock.now());
    if (!plan) {
      ctx.log.warn({ connId: id }, 'the returned path carries no expiry: the connection is not refreshed');
      return;
    }
    const signal = events.signal;
    const fire = (): void => {
      timers.delete(id);
      events.request({ signal }).catch((e: unknown) => {
        if (signal.aborted) return;
        const left = plan.expiresAtMs - ctx.clock.now();
        if (left <= retryMs) {
          ctx.log.warn({ connId: id, err: e }, 'refresh failed and the tokens run out: giving up');
          return;
        }
        ctx.log.warn({ connId: id, err: e, retryMs }, 'refresh failed; retrying');
        timers.set(id, ctx.clock.setTimer(retryMs, fire));
      });
    };
    timers.set(id, ctx.clock.setTimer(plan.delayMs, fire));
    if (!watched.has(signal)) {
      watched.add(signal);
      signal.addEventListener('abort', () => cancel(id), { once: true });
    }
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
      cancel(connection.id);
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
