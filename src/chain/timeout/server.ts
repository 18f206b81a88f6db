import type { Connection } from '../../api/index.js';
import { timestampToMs } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import type { TimerHandle } from '../../host/clock.js';
import { eventFactoryOf } from '../begin/event-factory.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement } from '../core/element.js';

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
  const timers = new Map<string, TimerHandle>();
  // One abort listener per connection lifetime, not one per refresh.
  const watched = new WeakSet<AbortSignal>();

  function cancel(id: string): void {
    timers.get(id)?.cancel();
    timers.delete(id);
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
      const id = conn.id;
      cancel(id);
      const delay = Math.max(0, expiresAtMs - ctx.clock.now() - requestTimeout(ctx));
      const signal = events.signal;
      const timer = ctx.clock.setTimer(delay, () => {
        if (timers.get(id) === timer) timers.delete(id);
        ctx.log.info(
          { connId: id, expiresAt: new Date(expiresAtMs).toISOString() },
          "the caller's token expired without a refresh: closing the connection",
        );
        events.close({ signal }).catch((e: unknown) => {
          ctx.log.warn({ connId: id, err: e }, 'closing the expired connection failed');
        });
      });
      timers.set(id, timer);
      if (!watched.has(signal)) {
        watched.add(signal);
        signal.addEventListener('abort', () => cancel(id), { once: true });
      }
      return conn;
    },
    async close(ctx, connection, next) {
      cancel(connection.id);
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
