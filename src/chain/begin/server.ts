import type { Connection } from '../../api/index.js';
import { State } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import type { ChainContext } from '../core/context.js';
import type { ChainElement, Next } from '../core/element.js';
import { ConnectionEvents, eventFactoryOf } from './event-factory.js';
import type { ConnectionEventsDeps } from './event-factory.js';
import type { BeginOptions } from './options.js';

const defaultEventTimeoutMs = 60_000;

/**
 * begin: all events of one connection id — Requests and Closes from outside, and refresh/timeout/heal
 * events fired through the EventFactory — run one at a time, in arrival order (NSM sdk begin).
 *
 * - A caller that gives up (deadline, cancel) gets its error at once, but the event it started runs to
 *   the end under begin's own time limit, so the chain is never left half-done.
 * - A failed first Request forgets the connection; a failed refresh keeps the established one.
 * - RESELECT_REQUESTED on an established connection closes the old path before requesting anew.
 * - Close always uses the last connection the chain returned, whatever the caller sent;
 *   Close of an unknown id does nothing.
 */
export function beginServer(options: BeginOptions = {}): ChainElement {
  const eventTimeoutMs = options.eventTimeoutMs ?? defaultEventTimeoutMs;
  const byId = new Map<string, ConnectionEvents>();
  // One deps object for every connection of this begin (the chain hands each element the same next).
  let deps: ConnectionEventsDeps | undefined;

  function eventsFor(id: string, next: Next): ConnectionEvents {
    const existing = byId.get(id);
    if (existing) return existing;
    if (deps?.next !== next) {
      deps = {
        next,
        eventTimeoutMs,
        onClosed(events) {
          if (byId.get(events.id) === events) byId.delete(events.id);
        },
      };
    }
    const created = new ConnectionEvents(id, deps);
    byId.set(id, created);
    return created;
  }

  const element: ChainElement = {
    name: 'begin',
    order: { requires: ['updatepath'] },

    request(ctx, request, next): Promise<Connection> {
      // Re-entry from an event this begin started: already serialised.
      if (eventFactoryOf(ctx)) return next.request(ctx, request);
      const id = request.connection?.id ?? '';
      if (id === '') {
        return Promise.reject(
          new AgentError('INVALID_ARGUMENT', 'request has no connection id', {
            hint: 'put updatepath before begin: it assigns the id',
          }),
        );
      }
      const events = eventsFor(id, next);
      const work = events.executor.run(async (): Promise<Connection> => {
        // Closed and forgotten while this call waited in the queue: start over with a fresh entry.
        if (byId.get(id) !== events) return element.request(ctx, request, next);
        if (events.state === 'established' && request.connection?.state === State.RESELECT_REQUESTED) {
          ctx.log.info({ connId: id }, 'client asked to reselect: closing the established path first');
          try {
            await events.runClose(ctx);
          } catch (e: unknown) {
            ctx.log.warn({ connId: id, err: e }, 'closing the old path failed; requesting a new one anyway');
          }
          return element.request(ctx, request, next);
        }
        return events.runRequest(ctx, request);
      });
      return raceCaller(ctx, work);
    },

    close(ctx, connection, next): Promise<void> {
      if (eventFactoryOf(ctx)) return next.close(ctx, connection);
      const events = byId.get(connection.id);
      if (!events) return Promise.resolve();
      const work = events.executor.run(async () => {
        if (byId.get(connection.id) !== events) return;
        await events.runClose(ctx);
      });
      return raceCaller(ctx, work);
    },
  };
  return element;
}

/** Resolves with the work, or rejects as soon as the caller's signal aborts (the work goes on). */
function raceCaller<T>(ctx: ChainContext, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(callerGaveUp(ctx));
    };
    if (ctx.signal.aborted) {
      onAbort();
      return;
    }
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        ctx.signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function callerGaveUp(ctx: ChainContext): AgentError {
  const timedOut = ctx.deadline !== undefined && ctx.clock.now() >= ctx.deadline;
  return new AgentError(timedOut ? 'DEADLINE_EXCEEDED' : 'CANCELLED', 'the caller stopped waiting', {
    hint: 'the request goes on in the background; retry with a longer deadline',
    cause: ctx.signal.reason,
  });
}

/**
 * begin for client chains: the same per-id serialisation and event factory. The client side's own
 * reselect (close, clear mechanism and endpoint, request again) is `EventFactory.request({reselect})`.
 */
export function beginClient(options: BeginOptions = {}): ChainElement {
  return beginServer(options);
}
