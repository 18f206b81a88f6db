import { create } from '@bufbuild/protobuf';
import type { Connection, PackedConnection, PackedMessage } from '../../api/index.js';
import { packConnection, packMessage, State, unpackConnection, unpackMessage } from '../../api/index.js';
import type { NetworkServiceRequest } from '../../api/index.js';
import { NetworkServiceRequestSchema } from '../../api/index.js';
import type { ChainContext } from '../core/context.js';
import { ContextKey } from '../core/context.js';
import type { Next } from '../core/element.js';
import { SerialExecutor } from '../core/executor.js';

export type EventState = 'new' | 'established' | 'closed';

export interface EventOptions {
  /**
   * Close the current path first, then request again with the mechanism and endpoint cleared and state
   * RESELECT_REQUESTED, so the next hops pick a new path (NSM heal on data-plane loss).
   */
  readonly reselect?: boolean;
  /** If aborted before the event starts, the event is skipped. */
  readonly signal?: AbortSignal;
}

/**
 * Lets an element fire a Request or Close for its connection long after the original call returned:
 * refresh, timeout and heal use it, and never call `next` themselves. Events go through the same
 * per-id queue as calls from outside and enter the chain just after begin, with the last request.
 */
export interface EventFactory {
  readonly id: string;
  readonly state: EventState;
  /** Aborted when the connection is closed (made on first use: elements that keep state per connection use onClosed). */
  readonly signal: AbortSignal;
  /** A copy of the last connection the chain returned for this id. */
  readonly connection: Connection | undefined;
  request(options?: EventOptions): Promise<void>;
  close(options?: EventOptions): Promise<void>;
  /**
   * Calls `listener` with this factory once the connection is closed (at once when it already is).
   * Pass one function per element, not one per connection: a listener given twice is kept once, and
   * it finds its connection's state by the factory (its `id`), so a thousand connections cost a
   * thousand array slots rather than a thousand closures and abort listeners.
   */
  onClosed(listener: (events: EventFactory) => void): void;
}

const eventFactoryKey = new ContextKey<EventFactory>('begin/event-factory');

/** The event factory of the connection being handled; set by begin for the elements after it. */
export function eventFactoryOf(ctx: ChainContext): EventFactory | undefined {
  return ctx.get(eventFactoryKey);
}

/** What every connection of one begin shares (one object per begin, not per connection). */
export interface ConnectionEventsDeps {
  /** The chain after begin. */
  readonly next: Next;
  /** Upper bound for one event, whoever started it (NSM: one minute). */
  readonly eventTimeoutMs: number;
  /** The connection is closed: begin forgets it. */
  onClosed(events: ConnectionEvents): void;
}

/**
 * One connection's serialised events. Owned by begin.
 *
 * Kept per connection for as long as it lives, so kept small: the last request in wire form
 * (PackedConnection and the mechanism preferences apart: ~0.6 KB instead of a ~3.5 KB object tree
 * and its tokens; unpacked only for an event, which copies it anyway), the listeners of elements
 * as a short array, no AbortController until someone asks for `signal`.
 */
export class ConnectionEvents implements EventFactory {
  readonly id: string;
  readonly executor = new SerialExecutor();
  #state: EventState = 'new';
  /** The last successful request: the connection the chain returned, and the request's mechanism preferences (none: undefined). */
  #connection: PackedConnection | undefined;
  #preferences: PackedMessage<typeof NetworkServiceRequestSchema> | undefined;
  /** Context of the last call from outside, without its lifetime: logger, clock, peer and values for self-started events. */
  #valueCtx: ChainContext | undefined;
  readonly #deps: ConnectionEventsDeps;
  #lifetime: AbortController | undefined;
  #listeners: ((events: EventFactory) => void)[] | undefined;

  constructor(id: string, deps: ConnectionEventsDeps) {
    this.id = id;
    this.#deps = deps;
  }

  get state(): EventState {
    return this.#state;
  }

  get signal(): AbortSignal {
    if (!this.#lifetime) {
      this.#lifetime = new AbortController();
      if (this.#state === 'closed') this.#lifetime.abort(this.#closedReason());
    }
    return this.#lifetime.signal;
  }

  get connection(): Connection | undefined {
    return this.#connection === undefined ? undefined : unpackConnection(this.#connection);
  }

  onClosed(listener: (events: EventFactory) => void): void {
    if (this.#state === 'closed') {
      listener(this);
      return;
    }
    // Copied, not pushed: a pushed-to array keeps room for 16 more; connections have one to three.
    if (!this.#listeners) this.#listeners = [listener];
    else if (!this.#listeners.includes(listener)) this.#listeners = [...this.#listeners, listener];
  }

  // ---- used by begin, inside the executor ----

  /** Runs a Request from outside through the rest of the chain. */
  async runRequest(callerCtx: ChainContext, request: NetworkServiceRequest): Promise<Connection> {
    const { ctx, done } = this.#eventContext(callerCtx);
    try {
      const conn = await this.#deps.next.request(ctx, request);
      conn.state = State.UP;
      // The request's own connection is replaced by the returned one: keep only what is re-sent.
      this.#keep(conn, request);
      this.#state = 'established';
      this.#valueCtx = callerCtx.detached();
      return conn;
    } catch (e: unknown) {
      if (this.#state !== 'established') this.#markClosed();
      throw e;
    } finally {
      done();
    }
  }

  /** Closes the last returned connection through the rest of the chain and forgets the id. */
  async runClose(callerCtx: ChainContext | undefined): Promise<void> {
    const connection = this.#state === 'established' ? this.connection : undefined;
    if (!connection) return;
    const { ctx, done } = this.#eventContext(callerCtx);
    try {
      await this.#deps.next.close(ctx, connection);
    } finally {
      done();
      this.#markClosed();
    }
  }

  // ---- EventFactory: events started from inside the chain ----

  request(options: EventOptions = {}): Promise<void> {
    return this.executor.run(async () => {
      if (this.#state !== 'established' || !this.#connection || options.signal?.aborted) return;
      const request =
        this.#preferences === undefined
          ? create(NetworkServiceRequestSchema)
          : unpackMessage(NetworkServiceRequestSchema, this.#preferences);
      const connection = unpackConnection(this.#connection);
      request.connection = connection;
      if (options.reselect) {
        await this.#closeQuietly(connection);
        connection.mechanism = undefined;
        connection.networkServiceEndpointName = '';
        connection.state = State.RESELECT_REQUESTED;
      }
      const { ctx, done } = this.#eventContext(undefined);
      try {
        const conn = await this.#deps.next.request(ctx, request);
        conn.state = State.UP;
        this.#keep(conn, request);
      } finally {
        done();
      }
    });
  }

  close(options: EventOptions = {}): Promise<void> {
    return this.executor.run(async () => {
      if (options.signal?.aborted) return;
      await this.runClose(undefined);
    });
  }

  #keep(conn: Connection, request: NetworkServiceRequest): void {
    this.#connection = packConnection(conn);
    const mechanismPreferences = request.mechanismPreferences;
    this.#preferences =
      mechanismPreferences.length === 0
        ? undefined
        : packMessage(
            NetworkServiceRequestSchema,
            create(NetworkServiceRequestSchema, { mechanismPreferences }),
          );
  }

  #markClosed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#valueCtx = undefined;
    this.#lifetime?.abort(this.#closedReason());
    const listeners = this.#listeners ?? [];
    this.#listeners = undefined;
    for (const listener of listeners) listener(this);
    this.#deps.onClosed(this);
  }

  #closedReason(): Error {
    return new Error(`connection ${this.id} closed`);
  }

  async #closeQuietly(conn: Connection): Promise<void> {
    const { ctx, done } = this.#eventContext(undefined);
    try {
      await this.#deps.next.close(ctx, conn);
    } catch (e: unknown) {
      ctx.log.warn(
        { connId: this.id, err: e },
        'closing the old path before reselect failed; requesting a new one',
      );
    } finally {
      done();
    }
  }

  /**
   * The event's own context: values of the caller (or of the last caller, for self-started events), a
   * lifetime that the caller cannot cut short, begin's time limit, and this event factory.
   */
  #eventContext(callerCtx: ChainContext | undefined): { ctx: ChainContext; done: () => void } {
    const base = callerCtx ?? this.#valueCtx;
    if (!base) throw new Error(`connection ${this.id}: no context to run an event in`);
    const ac = new AbortController();
    const timeoutMs = this.#deps.eventTimeoutMs;
    const timer = base.clock.setTimer(timeoutMs, () =>
      ac.abort(new Error(`event took longer than ${timeoutMs} ms`)),
    );
    const ctx = base.detached(ac.signal, base.clock.now() + timeoutMs).with(eventFactoryKey, this);
    return { ctx, done: () => timer.cancel() };
  }
}
