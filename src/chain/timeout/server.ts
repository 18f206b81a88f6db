import type { Connection } from '../../api/index.js';
import { timestampToMs } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import type { Logger } from '../../log/logger.js';
import { eventFactoryOf } from '../begin/event-factory.js';
import type { EventFactory } from '../begin/event-factory.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';
import { TimerQueue } from '../core/timer-queue.js';

interface Expiry {
  readonly events: EventFactory;
  readonly expiresAtMs: number;
  readonly log: Logger;
}

/**
 * timeout server (nsm-api.md §4.4): a connection lives only as long as its caller keeps its token
 * fresh. After each successful Request a Close is scheduled for the previous segment's expiry, minus
 * the time the request was allowed to take (so a refresh that arrives just in time, and is still
 * running, is not overtaken by the Close), clamped at now; each refresh reschedules, Close cancels.
 * The Close enters through begin's EventFactory, never calling next from a timer.
 *
 * A Request whose previous segment has no expiry is refused before the rest of the chain runs
 * (upstream fails it after; refusing first leaves nothing downstream to undo).
 */
export function timeoutServer(): ChainElement {
  // One clock timer for all connections; an entry keeps what closing needs, not the request's context.
  const timers = new TimerQueue<Expiry>((id, { events, expiresAtMs, log }) => {
    log.info(
      { connId: id, expiresAt: new Date(expiresAtMs).toISOString() },
      "the caller's token expired without a refresh: closing the connection",
    );
    events.close().catch((e: unknown) => {
      log.warn({ connId: id, err: e }, 'closing the expired connection failed');
    });
  });
  // One listener for every connection (begin keeps it once per connection, no closure each). The
  // timer is keyed by the returned id, begin's own on the server side (updatepath restores it);
  // only a chain where they differ needs the map.
  const idOf = new WeakMap<EventFactory, string>();
  const onClosed = (events: EventFactory): void => timers.delete(idOf.get(events) ?? events.id);

  function schedule(ctx: ChainContext, events: EventFactory, id: string, expiresAtMs: number): void {
    const delay = Math.max(0, expiresAtMs - ctx.clock.now() - requestTimeout(ctx));
    timers.set(ctx.clock, id, delay, { events, expiresAtMs, log: ctx.log });
    if (events.id !== id) idOf.set(events, id);
    events.onClosed(onClosed);
  }

  return {
    name: 'timeout',
    order: { requires: ['updatepath', 'begin'], after: ['updatetoken', 'authorize'] },
    async request(ctx, request, next) {
      const expiresAtMs = request.connection ? prevExpiry(request.connection) : undefined;
      if (expiresAtMs === undefined) {
        throw new AgentError('INVALID_ARGUMENT', 'expiration for the previous path segment cannot be nil', {
          hint: 'the caller must send nsm-client-token-expires metadata (updatetoken in its client chain), or set expires on its own path segment',
        });
      }
      const events = eventFactoryOf(ctx);
      if (!events) {
        throw new AgentError('CHAIN_INVALID', 'timeout needs begin before it', {
          hint: 'put begin before timeout in the server chain',
        });
      }
      const conn = await next.request(ctx, request);
      schedule(ctx, events, conn.id, expiresAtMs);
      return conn;
    },
    async close(ctx, connection, next) {
      timers.delete(connection.id);
      await next.close(ctx, connection);
    },
  };
}

function prevExpiry(conn: Connection): number | undefined {
  const path = conn.path;
  const expires = path?.pathSegments[path.index - 1]?.expires;
  return expires ? timestampToMs(expires) : undefined;
}

/** What is left of the time the request may take (begin's event limit); 0 without a deadline. */
function requestTimeout(ctx: ChainContext): number {
  const left = ctx.remaining();
  return Number.isFinite(left) ? Math.max(0, left) : 0;
}
