import type { AgentError } from '../errors/index.js';
import { compactedError } from './store-errors.js';
import type { WatchEvent } from './store.js';

export interface WatchHistoryOptions {
  /** Events kept for replay and for watchers that lag behind; older ones are dropped. */
  readonly limit: number;
  /** Revision the store is at when the history starts: nothing at or before it can be replayed. */
  readonly startRevision: number;
}

/**
 * The recent changes of a store, in revision order, and the watches that read them. A watch is a
 * cursor into this history, so a slow watcher costs no memory of its own: when the history drops
 * events the watcher has not read yet, it fails as compacted and its caller lists again, exactly as
 * an etcd watcher does after a compaction.
 */
export class WatchHistory {
  readonly #limit: number;
  readonly #events: WatchEvent[] = [];
  /** Sequence number of #events[0]; sequence numbers never repeat. */
  #firstSeq = 0;
  /** Every event with a revision after this one is still in #events. */
  #compactedRevision: number;
  #latestRevision: number;
  #closed: AgentError | undefined;
  readonly #wakers = new Set<() => void>();

  constructor(options: WatchHistoryOptions) {
    this.#limit = Math.max(1, options.limit);
    this.#compactedRevision = options.startRevision;
    this.#latestRevision = options.startRevision;
  }

  /** Records committed changes (in revision order) and wakes the watchers. */
  append(events: readonly WatchEvent[]): void {
    if (events.length === 0) return;
    for (const e of events) this.#events.push(e);
    this.#latestRevision = (events[events.length - 1] as WatchEvent).revision;
    const excess = this.#events.length - this.#limit;
    if (excess > 0) {
      this.#compactedRevision = (this.#events[excess - 1] as WatchEvent).revision;
      this.#events.splice(0, excess);
      this.#firstSeq += excess;
    }
    this.#wake();
  }

  /** Ends every watch with `reason` (the store is closing). */
  close(reason: AgentError): void {
    this.#closed = reason;
    this.#wake();
  }

  /**
   * Events under `prefix` with a revision after `afterRevision` (default: the latest committed), until
   * `signal` aborts. The start point is fixed now, not when iteration begins.
   */
  watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncIterable<WatchEvent> {
    const after = afterRevision ?? this.#latestRevision;
    // Events appended from now on get sequence numbers ≥ this; earlier ones are found by revision.
    const seqNow = this.#firstSeq + this.#events.length;
    return { [Symbol.asyncIterator]: () => this.#run(prefix, after, seqNow, signal) };
  }

  async *#run(
    prefix: string,
    after: number,
    seqNow: number,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent> {
    if (after < this.#compactedRevision) throw compactedError(after, this.#compactedRevision);
    // A future `after` starts at seqNow; the revision filter below skips events up to it.
    let seq = Math.min(this.#seqAfter(after), seqNow);
    while (!signal.aborted) {
      if (this.#closed) throw this.#closed;
      if (seq < this.#firstSeq) throw compactedError(after, this.#compactedRevision);
      const end = this.#firstSeq + this.#events.length;
      if (seq < end) {
        const event = this.#events[seq - this.#firstSeq] as WatchEvent;
        seq++;
        const key = event.type === 'put' ? event.entry.key : event.key;
        if (event.revision > after && key.startsWith(prefix)) yield event;
        continue;
      }
      await this.#changed(signal);
    }
  }

  /** Sequence number of the first event with a revision after `revision`. */
  #seqAfter(revision: number): number {
    let lo = 0;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#events[mid] as WatchEvent).revision <= revision) lo = mid + 1;
      else hi = mid;
    }
    return this.#firstSeq + lo;
  }

  #changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#wakers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#wakers.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #wake(): void {
    for (const w of [...this.#wakers]) w();
  }
}
