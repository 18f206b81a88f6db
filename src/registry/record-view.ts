import type { DescMessage, MessageShape } from '../api/index.js';
import { AgentError, describe } from '../errors/index.js';
import { sleepWith } from '../host/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import type { NamedRecord, RecordEvent, RecordSet } from './record-set.js';

/** A change as the view tells its subscribers: the record, and whether it was deleted. */
export interface ViewEvent<T> {
  readonly record: T;
  readonly deleted: boolean;
  /**
   * A put that only renewed the record (what the view's `isRenewal` ignores, e.g. an NSE's
   * expiration_time moved by a refresh); watchers that asked not to hear renewals skip it.
   */
  readonly renewal?: boolean;
}

export interface RecordViewOptions<T> {
  /** True when `next` only renews `prev` (same record, later expiry). Default: never. */
  readonly isRenewal?: (prev: T, next: T) => boolean;
}

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5_000;
const CATCH_UP_TIMEOUT_MS = 5_000;

/**
 * This server's in-memory view of one RecordSet, kept current by a single store watch (upstream's
 * memory registry holds the same map). Every Find reads it and every watcher subscribes to it, so
 * a hundred watchers cost one store watch and one decode per change, not a hundred. The store stays
 * the truth: the view lists again after a broken or compacted watch, and a write waits (bounded)
 * until the view has seen it, so a caller's Find after its own Register sees the registration.
 * Started by the first use, stopped by close().
 */
export class RecordView<D extends DescMessage> {
  readonly #records: RecordSet<D>;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #map = new Map<string, MessageShape<D>>();
  readonly #subscribers = new Set<(event: ViewEvent<MessageShape<D>>) => void>();
  readonly #waiters = new Set<{ revision: number; resolve: () => void }>();
  readonly #abort = new AbortController();
  readonly #isRenewal: ((prev: MessageShape<D>, next: MessageShape<D>) => boolean) | undefined;
  #revision = 0;
  #ready: Promise<void> | undefined;

  constructor(
    records: RecordSet<D>,
    clock: Clock,
    log: Logger,
    options: RecordViewOptions<MessageShape<D>> = {},
  ) {
    this.#records = records;
    this.#clock = clock;
    this.#log = log;
    this.#isRenewal = options.isRenewal;
  }

  /** Resolves once the view holds the store's records (lists and starts watching on first call). */
  ready(): Promise<void> {
    if (this.#abort.signal.aborted) {
      return Promise.reject(new AgentError('UNAVAILABLE', 'the registry is shutting down'));
    }
    this.#ready ??= new Promise<void>((resolve, reject) => {
      void this.#run(resolve, reject);
    });
    return this.#ready;
  }

  get started(): boolean {
    return this.#ready !== undefined;
  }

  get(name: string): MessageShape<D> | undefined {
    return this.#map.get(name);
  }

  values(): IterableIterator<MessageShape<D>> {
    return this.#map.values();
  }

  get size(): number {
    return this.#map.size;
  }

  /** Calls `fn` for every later change, synchronously as the view applies it. Returns unsubscribe. */
  subscribe(fn: (event: ViewEvent<MessageShape<D>>) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  /** Resolves when the view has applied store revision `revision` (or after a bounded wait). */
  async caughtUp(revision: number): Promise<void> {
    if (!this.started || this.#revision >= revision) return;
    let waiter: { revision: number; resolve: () => void } | undefined;
    const seen = new Promise<void>((resolve) => {
      waiter = { revision, resolve };
      this.#waiters.add(waiter);
    });
    let timer: { cancel(): void } | undefined;
    const late = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(CATCH_UP_TIMEOUT_MS, () => {
        this.#log.warn(
          { revision, viewRevision: this.#revision },
          'registry view is behind the store; answering anyway',
        );
        resolve();
      });
    });
    await Promise.race([seen, late]);
    timer?.cancel();
    if (waiter) this.#waiters.delete(waiter);
  }

  #closed(): boolean {
    return this.#abort.signal.aborted;
  }

  close(): void {
    this.#abort.abort(new AgentError('CANCELLED', 'registry closed'));
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
  }

  async #run(resolve: () => void, reject: (e: unknown) => void): Promise<void> {
    const signal = this.#abort.signal;
    let first = true;
    let backoff = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        const { records, revision } = await this.#records.list();
        this.#replace(records, revision, !first);
        if (first) resolve();
        first = false;
        backoff = RETRY_MIN_MS;
        for await (const ev of this.#records.watch(revision, signal)) this.#apply(ev);
      } catch (e: unknown) {
        if (this.#closed()) break;
        if (first) {
          // No view yet: the caller's Find fails now instead of waiting on a store that is down.
          this.#ready = undefined;
          reject(e);
          return;
        }
        this.#log.warn(
          { err: describe(e), retryInMs: backoff },
          'registry view lost its store watch; listing again',
        );
        try {
          // setTimer-based: a retry loop must not keep a shutting-down process alive.
          await sleepWith(this.#clock, backoff, signal);
        } catch {
          break;
        }
        backoff = Math.min(backoff * 2, RETRY_MAX_MS);
      }
    }
    if (first) reject(new AgentError('UNAVAILABLE', 'the registry is shutting down'));
  }

  /** After a relist, subscribers hear about what changed while the watch was down. */
  #replace(records: readonly NamedRecord<MessageShape<D>>[], revision: number, notify: boolean): void {
    const fresh = new Map<string, MessageShape<D>>();
    for (const r of records) fresh.set(r.name, r.record);
    if (notify) {
      for (const [name, old] of this.#map) if (!fresh.has(name)) this.#emit({ record: old, deleted: true });
      for (const r of fresh.values()) this.#emit({ record: r, deleted: false });
    }
    this.#map.clear();
    for (const [k, v] of fresh) this.#map.set(k, v);
    this.#advance(revision);
  }

  #apply(ev: RecordEvent<MessageShape<D>>): void {
    if (ev.type === 'put') {
      const prev = this.#map.get(ev.name);
      this.#map.set(ev.name, ev.record);
      const renewal = prev !== undefined && this.#isRenewal?.(prev, ev.record) === true;
      this.#emit(
        renewal ? { record: ev.record, deleted: false, renewal } : { record: ev.record, deleted: false },
      );
    } else {
      const last = this.#map.get(ev.name) ?? ev.record;
      this.#map.delete(ev.name);
      if (last) this.#emit({ record: last, deleted: true });
    }
    this.#advance(ev.revision);
  }

  #emit(event: ViewEvent<MessageShape<D>>): void {
    for (const fn of this.#subscribers) fn(event);
  }

  #advance(revision: number): void {
    this.#revision = Math.max(this.#revision, revision);
    for (const w of this.#waiters) {
      if (w.revision <= this.#revision) {
        w.resolve();
        this.#waiters.delete(w);
      }
    }
  }
}
