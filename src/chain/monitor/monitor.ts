import { create } from '@bufbuild/protobuf';
import type { Connection, ConnectionEvent, MonitorScopeSelector, PackedConnection } from '../../api/index.js';
import {
  ConnectionEventSchema,
  ConnectionEventType,
  packConnection,
  State,
  unpackConnection,
} from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import { matchesSelector } from './selector.js';

export interface ConnectionMonitorOptions {
  /**
   * Connection updates one subscriber may have waiting (unread events, counted by the connections
   * they carry) before its stream is ended with RESOURCE_EXHAUSTED (default 4096): a subscriber that
   * stopped reading must not grow the agent's memory without bound.
   */
  readonly maxBacklog?: number;
}

const defaultMaxBacklog = 4096;

interface Subscriber {
  readonly selector: MonitorScopeSelector | undefined;
  push(event: ConnectionEvent): void;
  end(error?: Error): void;
}

/**
 * The connections this hop returned, keyed by this hop's connection id, and the subscribers that
 * watch them (NSM sdk monitor server's state; one per agent). `monitorServer` feeds it from the
 * chain, `monitorConnectionService` serves it as `connection.MonitorConnection`. Events carry
 * copies of the connections as this hop returned them.
 *
 * The connections are kept in wire form (PackedConnection: ~0.5 KB each with the tokens shared,
 * rather than a ~3.5 KB object tree): they are read only when a subscriber starts or an event goes
 * out, and every read is a copy anyway.
 */
export class ConnectionMonitor {
  readonly #connections = new Map<string, PackedConnection>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #maxBacklog: number;
  #closed = false;

  constructor(options: ConnectionMonitorOptions = {}) {
    this.#maxBacklog = Math.max(1, options.maxBacklog ?? defaultMaxBacklog);
  }

  /** Number of connections held. */
  get size(): number {
    return this.#connections.size;
  }

  /** Number of open subscriptions (for status and tests). */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Copies of every connection held, in insertion order. */
  list(): Connection[] {
    return [...this.#connections.values()].map((c) => unpackConnection(c));
  }

  /** A copy of one connection, by this hop's id. */
  get(id: string): Connection | undefined {
    const packed = this.#connections.get(id);
    return packed === undefined ? undefined : unpackConnection(packed);
  }

  /** Stores a copy of `conn` (keyed by `conn.id`) and sends UPDATE to matching subscribers. */
  update(conn: Connection): void {
    const packed = packConnection(conn);
    this.#connections.set(conn.id, packed);
    this.#emit(ConnectionEventType.UPDATE, packed);
  }

  /** Forgets a connection and sends DELETE to matching subscribers; unknown ids do nothing. */
  delete(id: string): void {
    const packed = this.#connections.get(id);
    if (packed === undefined) return;
    this.#connections.delete(id);
    this.#emit(ConnectionEventType.DELETE, packed);
  }

  /**
   * Marks a connection DOWN (its data plane is lost) and sends UPDATE, so the hop before re-requests.
   * Returns false for an unknown id.
   */
  markDown(id: string): boolean {
    const packed = this.#connections.get(id);
    if (packed === undefined) return false;
    const stored = unpackConnection(packed);
    stored.state = State.DOWN;
    const down = packConnection(stored);
    this.#connections.set(id, down);
    this.#emit(ConnectionEventType.UPDATE, down);
    return true;
  }

  /**
   * Events for connections matching `selector`: first one INITIAL_STATE_TRANSFER with every matching
   * connection (possibly none), then UPDATE/DELETE as they happen (those of one kind that queue up
   * unread go out as one event with all their connections). Ends when `signal` aborts or the
   * monitor closes; fails with RESOURCE_EXHAUSTED when the consumer falls `maxBacklog` events behind.
   * The snapshot is taken now, so no change between this call and the first read is missed.
   */
  subscribe(
    selector: MonitorScopeSelector | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<ConnectionEvent> {
    const initial = create(ConnectionEventSchema, { type: ConnectionEventType.INITIAL_STATE_TRANSFER });
    for (const [id, packed] of this.#connections) {
      const conn = unpackConnection(packed);
      if (matchesSelector(conn, selector)) initial.connections[id] = conn;
    }
    const queue: ConnectionEvent[] = [initial];
    // The queued event at the tail that this subscriber made itself by merging (see push); events
    // from #emit are shared by every subscriber and are never changed.
    let merged: ConnectionEvent | undefined;
    // Connection updates queued and not read (merged ones too): what the backlog limit counts.
    let pending = 0;
    let ended = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const maxBacklog = this.#maxBacklog;

    const finish = (): void => {
      this.#subscribers.delete(subscriber);
      signal?.removeEventListener('abort', onAbort);
    };
    const subscriber: Subscriber = {
      selector,
      push: (event) => {
        if (ended) return;
        const size = Object.keys(event.connections).length;
        if (pending + size > maxBacklog) {
          subscriber.end(
            new AgentError(
              'RESOURCE_EXHAUSTED',
              `the monitor subscriber fell ${maxBacklog} connection updates behind; its stream is ended`,
              { hint: 'subscribe again: the new stream starts with the current state' },
            ),
          );
          return;
        }
        pending += size;
        // Not read yet, same kind: one event with both (a burst of connects, a heal storm sends
        // one UPDATE with many connections, as INITIAL_STATE_TRANSFER does; a later state of the
        // same connection replaces the earlier). UPDATE then DELETE never merge: order is kept.
        const tail = queue.length > 0 ? queue[queue.length - 1] : undefined;
        if (
          tail !== undefined &&
          tail.type === event.type &&
          event.type !== ConnectionEventType.INITIAL_STATE_TRANSFER
        ) {
          if (tail !== merged) {
            merged = create(ConnectionEventSchema, { type: tail.type, connections: { ...tail.connections } });
            queue[queue.length - 1] = merged;
          }
          Object.assign(merged.connections, event.connections);
          return;
        }
        queue.push(event);
        wake?.();
      },
      end: (error) => {
        if (ended) return;
        ended = true;
        failure = error;
        // A failed stream drops what it had not delivered: the consumer must resubscribe anyway.
        if (error) queue.length = 0;
        finish();
        wake?.();
      },
    };
    const onAbort = (): void => subscriber.end();
    if (this.#closed || signal?.aborted) {
      ended = true;
    } else {
      this.#subscribers.add(subscriber);
      signal?.addEventListener('abort', onAbort, { once: true });
    }

    return {
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const event = queue.shift();
            if (event) {
              if (event === merged) merged = undefined; // out of the queue: never changed again
              if (event !== initial) pending -= Object.keys(event.connections).length;
              yield event;
              continue;
            }
            if (failure) throw failure;
            if (ended) return;
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
        } finally {
          if (!ended) {
            ended = true;
            finish();
          }
          queue.length = 0;
        }
      },
    };
  }

  /** Ends every subscription (normally) and refuses new ones; connections stay listed. */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#subscribers]) s.end();
  }

  #emit(type: ConnectionEventType, packed: PackedConnection): void {
    if (this.#subscribers.size === 0) return;
    const conn = unpackConnection(packed);
    let event: ConnectionEvent | undefined;
    for (const s of [...this.#subscribers]) {
      if (!matchesSelector(conn, s.selector)) continue;
      event ??= create(ConnectionEventSchema, { type, connections: { [conn.id]: conn } });
      s.push(event);
    }
  }
}
