import type { X509Certificate } from 'node:crypto';
import type { Clock } from '../../host/clock.js';
import type { Random } from '../../host/random.js';
import type { Logger } from '../../log/logger.js';

/**
 * A typed key for a value carried by a ChainContext. Each element that needs to pass something down
 * the chain owns its key (module-private where possible), so there is no untyped bag of values.
 */
export class ContextKey<T> {
  declare readonly _type: T;
  constructor(readonly description: string) {}
}

/** Who is calling, as seen at the gRPC edge; filled by the server that receives the call. */
export interface PeerInfo {
  /** SPIFFE ID from the peer's verified certificate, when the transport is mTLS. */
  readonly spiffeId?: string;
  /** Transport address, for logs. */
  readonly address?: string;
  /** The peer's verified certificate (SVID leaf): token signatures are checked against its key. */
  readonly certificate?: X509Certificate;
}

export interface ChainContextInit {
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  /** Aborted when the caller gives up or the deadline passes. */
  readonly signal?: AbortSignal;
  /** Absolute deadline in clock milliseconds. */
  readonly deadline?: number;
  readonly peer?: PeerInfo;
}

/** One value of a context, and the values of the context it was made from. */
interface ValueNode {
  readonly key: ContextKey<unknown>;
  readonly value: unknown;
  readonly parent: ValueNode | undefined;
}

/**
 * What a chain element gets besides the request: cancellation, deadline, the clock and logger
 * (from the context, so tests swap a fake clock), the peer, and typed values set by elements above.
 * Immutable: `with…` returns a new context.
 *
 * Contexts are made at every element that adds a value and some are kept for a connection's
 * lifetime (begin's, for events it starts itself), so they are cheap: `with` adds one node in
 * front of the values it extends (a handful per chain, looked up newest first) instead of copying
 * a Map, and a context made without a signal gets its never-aborted one only when asked.
 */
export class ChainContext {
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  readonly deadline: number | undefined;
  readonly peer: PeerInfo | undefined;
  #signal: AbortSignal | undefined;
  readonly #values: ValueNode | undefined;

  constructor(init: ChainContextInit, values?: ValueNode) {
    this.log = init.log;
    this.clock = init.clock;
    this.random = init.random;
    this.#signal = init.signal;
    this.deadline = init.deadline;
    this.peer = init.peer;
    this.#values = values;
  }

  /** Aborted when the caller gives up or the deadline passes; never, for a context made without one. */
  get signal(): AbortSignal {
    this.#signal ??= new AbortController().signal;
    return this.#signal;
  }

  get<T>(key: ContextKey<T>): T | undefined {
    for (let n = this.#values; n !== undefined; n = n.parent) if (n.key === key) return n.value as T;
    return undefined;
  }

  with<T>(key: ContextKey<T>, value: T): ChainContext {
    return new ChainContext(this.#init(), { key, value, parent: this.#values });
  }

  withLog(log: Logger): ChainContext {
    return new ChainContext({ ...this.#init(), log }, this.#values);
  }

  /**
   * The same values and logger, but a new lifetime: cancelled only by `signal` (or never), with its own
   * deadline. Used by begin so a caller that gives up does not abort a half-done event, and by timers.
   */
  detached(signal?: AbortSignal, deadline?: number): ChainContext {
    const init: ChainContextInit = {
      log: this.log,
      clock: this.clock,
      random: this.random,
      ...(signal ? { signal } : {}),
      ...(deadline !== undefined ? { deadline } : {}),
      ...(this.peer ? { peer: this.peer } : {}),
    };
    return new ChainContext(init, this.#values);
  }

  /** Milliseconds left before the deadline (Infinity when there is none). */
  remaining(): number {
    return this.deadline === undefined ? Infinity : this.deadline - this.clock.now();
  }

  #init(): ChainContextInit {
    return {
      log: this.log,
      clock: this.clock,
      random: this.random,
      ...(this.#signal ? { signal: this.#signal } : {}),
      ...(this.deadline !== undefined ? { deadline: this.deadline } : {}),
      ...(this.peer ? { peer: this.peer } : {}),
    };
  }
}
