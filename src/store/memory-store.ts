import { AgentError } from '../errors/index.js';
import type { Clock } from '../host/index.js';
import { systemClock } from '../host/index.js';
import { KvState } from './kv-state.js';
import type { Mutation } from './kv-state.js';
import { LeaseTimers } from './lease-timers.js';
import { checkKey, checkRevision, checkTtl, checkValue } from './limits.js';
import { leaseNotFoundError } from './store-errors.js';
import type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';
import { WatchHistory } from './watch-history.js';

export interface MemoryStoreOptions {
  /** Drives lease expiry; tests pass a FakeClock. */
  readonly clock?: Clock;
  /** Changes kept for watch replay (default 10,000). */
  readonly historyLimit?: number;
}

/**
 * The Store contract in memory: nothing survives the process. For tests of store users, and the
 * reference the other stores are checked against by the shared contract suite.
 */
export class MemoryStore implements Store {
  readonly description = 'memory:';
  readonly #clock: Clock;
  readonly #state = new KvState();
  readonly #history: WatchHistory;
  readonly #timers: LeaseTimers;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#history = new WatchHistory({ limit: options.historyLimit ?? 10_000, startRevision: 0 });
    this.#timers = new LeaseTimers(this.#clock, (id) => {
      this.#expire(id);
    });
  }

  get(key: string): Promise<Entry | undefined> {
    return this.#run(() => {
      checkKey(key);
      return this.#state.get(key);
    });
  }

  list(prefix: string): Promise<ListResult> {
    return this.#run(() => ({
      entries: this.#state.list(prefix),
      revision: this.#state.revision,
    }));
  }

  put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<{ readonly revision: number }> {
    return this.#run(() => {
      checkKey(key);
      checkValue(value);
      if (options.ifModRevision !== undefined) checkRevision(options.ifModRevision, 'ifModRevision');
      const lease = options.lease ?? 0;
      this.#state.checkPut(key, options.ifModRevision, lease);
      // A copy of exactly these bytes: Buffer#slice is a view, and a view of a small pooled Buffer
      // would keep its whole 8 KiB pool slab alive for as long as the key lives (~20 MB at 10k NSEs).
      this.#apply({ op: 'put', key, value: new Uint8Array(value), lease });
      return { revision: this.#state.revision };
    });
  }

  delete(
    key: string,
    options: DeleteOptions = {},
  ): Promise<{ readonly revision: number; readonly deleted: boolean }> {
    return this.#run(() => {
      checkKey(key);
      if (options.ifModRevision !== undefined) checkRevision(options.ifModRevision, 'ifModRevision');
      const exists = this.#state.checkDelete(key, options.ifModRevision);
      if (exists) this.#apply({ op: 'delete', key });
      return { revision: this.#state.revision, deleted: exists };
    });
  }

  grantLease(ttlMs: number): Promise<number> {
    return this.#run(() => {
      checkTtl(ttlMs);
      const id = this.#state.nextLeaseId;
      const expiresAt = this.#clock.now() + ttlMs;
      this.#apply({ op: 'grant', lease: id, ttlMs, expiresAt });
      this.#timers.arm(id, expiresAt);
      return id;
    });
  }

  keepAlive(lease: number): Promise<void> {
    return this.#run(() => {
      const l = this.#state.lease(lease);
      if (!l) throw leaseNotFoundError(lease);
      if (l.expiresAt <= this.#clock.now()) {
        this.#expire(lease);
        throw leaseNotFoundError(lease);
      }
      const expiresAt = this.#clock.now() + l.ttlMs;
      this.#apply({ op: 'keepalive', lease, expiresAt });
      this.#timers.arm(lease, expiresAt);
    });
  }

  revokeLease(lease: number): Promise<void> {
    return this.#run(() => {
      this.#timers.disarm(lease);
      this.#apply({ op: 'revoke', lease });
    });
  }

  watch(
    prefix: string,
    options: { readonly afterRevision?: number; readonly signal: AbortSignal },
  ): AsyncIterable<WatchEvent> {
    if (this.#closed) throw closedError();
    if (options.afterRevision !== undefined) checkRevision(options.afterRevision, 'afterRevision');
    return this.#history.watch(prefix, options.afterRevision, options.signal);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#timers.clear();
      this.#history.close(closedError());
    }
    return Promise.resolve();
  }

  #expire(id: number): void {
    if (this.#closed) return;
    this.#timers.disarm(id);
    this.#apply({ op: 'revoke', lease: id });
  }

  #apply(m: Mutation): void {
    this.#history.append(this.#state.apply(m));
  }

  /** Runs a synchronous operation as the async contract wants, failing after close. */
  #run<T>(op: () => T): Promise<T> {
    try {
      if (this.#closed) throw closedError();
      return Promise.resolve(op());
    } catch (e: unknown) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

function closedError(): AgentError {
  return new AgentError('UNAVAILABLE', 'the memory store is closed', {
    hint: 'open a new store; this one was closed by its owner',
  });
}
