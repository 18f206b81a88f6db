import { AgentError } from '../errors/index.js';
import { compareKeys } from './key-order.js';
import { conflictError, leaseNotFoundError } from './store-errors.js';
import type { Entry, WatchEvent } from './store.js';

/**
 * One change to the key space. The embedded store's log is a sequence of these; applying the same
 * sequence to an empty KvState always yields the same state and the same revisions, which is what
 * makes replay after a crash exact.
 */
export type Mutation =
  | { readonly op: 'put'; readonly key: string; readonly value: Uint8Array; readonly lease: number }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'grant'; readonly lease: number; readonly ttlMs: number; readonly expiresAt: number }
  | { readonly op: 'keepalive'; readonly lease: number; readonly expiresAt: number }
  | { readonly op: 'revoke'; readonly lease: number };

export interface LeaseState {
  readonly id: number;
  readonly ttlMs: number;
  /** Absolute expiry, ms since the epoch. */
  expiresAt: number;
  readonly keys: Set<string>;
}

/** Everything needed to rebuild a KvState: what a snapshot file holds. */
export interface KvSnapshot {
  readonly revision: number;
  readonly nextLeaseId: number;
  readonly entries: readonly Entry[];
  readonly leases: readonly { readonly id: number; readonly ttlMs: number; readonly expiresAt: number }[];
}

/**
 * The key space as a deterministic state machine, with no I/O and no clock: validation (check*) is
 * separate from application (apply) so a store can validate, log, then apply, and replay applies only.
 * Revisions follow etcd: every put and every delete of an existing key is one revision; revoking a
 * lease deletes all its keys in one revision; lease grants and keep-alives do not move the revision.
 */
export class KvState {
  #revision = 0;
  #nextLeaseId = 1;
  readonly #entries = new Map<string, Entry>();
  /** Keys in byte order, for prefix lists. */
  readonly #sorted: string[] = [];
  readonly #leases = new Map<number, LeaseState>();

  static fromSnapshot(s: KvSnapshot): KvState {
    const state = new KvState();
    state.#revision = s.revision;
    state.#nextLeaseId = s.nextLeaseId;
    for (const l of s.leases) state.#leases.set(l.id, { ...l, keys: new Set() });
    for (const e of s.entries) {
      state.#entries.set(e.key, e);
      if (e.lease !== 0) state.#leases.get(e.lease)?.keys.add(e.key);
    }
    state.#sorted.push(...state.#entries.keys());
    state.#sorted.sort(compareKeys);
    return state;
  }

  get revision(): number {
    return this.#revision;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The id the next granted lease gets. */
  get nextLeaseId(): number {
    return this.#nextLeaseId;
  }

  get(key: string): Entry | undefined {
    return this.#entries.get(key);
  }

  list(prefix: string): Entry[] {
    const out: Entry[] = [];
    for (let i = this.#lowerBound(prefix); i < this.#sorted.length; i++) {
      const key = this.#sorted[i] as string;
      if (!key.startsWith(prefix)) break;
      out.push(this.#entries.get(key) as Entry);
    }
    return out;
  }

  lease(id: number): LeaseState | undefined {
    return this.#leases.get(id);
  }

  leases(): IterableIterator<LeaseState> {
    return this.#leases.values();
  }

  /** Throws a conflict or NOT_FOUND (lease) unless this put may happen now. */
  checkPut(key: string, ifModRevision: number | undefined, lease: number): void {
    this.#checkRevision(key, ifModRevision);
    if (lease !== 0 && !this.#leases.has(lease)) throw leaseNotFoundError(lease);
  }

  /** Throws a conflict unless this delete may happen now; returns whether the key exists. */
  checkDelete(key: string, ifModRevision: number | undefined): boolean {
    this.#checkRevision(key, ifModRevision);
    return this.#entries.has(key);
  }

  /** Applies a mutation and returns the watch events it causes (none for lease bookkeeping). */
  apply(m: Mutation): WatchEvent[] {
    switch (m.op) {
      case 'put':
        return [this.#put(m.key, m.value, m.lease)];
      case 'delete': {
        const prev = this.#entries.get(m.key);
        if (!prev) return [];
        this.#revision++;
        this.#remove(prev);
        return [{ type: 'delete', key: m.key, revision: this.#revision, prev }];
      }
      case 'grant':
        this.#leases.set(m.lease, { id: m.lease, ttlMs: m.ttlMs, expiresAt: m.expiresAt, keys: new Set() });
        this.#nextLeaseId = Math.max(this.#nextLeaseId, m.lease + 1);
        return [];
      case 'keepalive': {
        const lease = this.#leases.get(m.lease);
        if (lease) lease.expiresAt = m.expiresAt;
        return [];
      }
      case 'revoke': {
        const lease = this.#leases.get(m.lease);
        if (!lease) return [];
        this.#leases.delete(m.lease);
        if (lease.keys.size === 0) return [];
        this.#revision++;
        const events: WatchEvent[] = [];
        for (const key of [...lease.keys].sort(compareKeys)) {
          const prev = this.#entries.get(key);
          if (!prev) continue;
          this.#remove(prev);
          events.push({ type: 'delete', key, revision: this.#revision, prev });
        }
        return events;
      }
    }
  }

  toSnapshot(): KvSnapshot {
    return {
      revision: this.#revision,
      nextLeaseId: this.#nextLeaseId,
      entries: this.#sorted.map((k) => this.#entries.get(k) as Entry),
      leases: [...this.#leases.values()].map((l) => ({ id: l.id, ttlMs: l.ttlMs, expiresAt: l.expiresAt })),
    };
  }

  #checkRevision(key: string, ifModRevision: number | undefined): void {
    if (ifModRevision === undefined) return;
    const actual = this.#entries.get(key)?.modRevision ?? 0;
    if (actual !== ifModRevision) throw conflictError(key, ifModRevision, actual);
  }

  #put(key: string, value: Uint8Array, lease: number): WatchEvent {
    const prev = this.#entries.get(key);
    if (lease !== 0 && !this.#leases.has(lease)) {
      throw new AgentError('INTERNAL', `store change attaches key to unknown lease ${lease}`, {
        hint: 'this is a bug: puts are checked before they are applied',
      });
    }
    this.#revision++;
    const entry: Entry = {
      key,
      value,
      modRevision: this.#revision,
      createRevision: prev?.createRevision ?? this.#revision,
      lease,
    };
    if (prev) {
      if (prev.lease !== 0 && prev.lease !== lease) this.#leases.get(prev.lease)?.keys.delete(key);
    } else {
      this.#sorted.splice(this.#lowerBound(key), 0, key);
    }
    this.#entries.set(key, entry);
    if (lease !== 0) this.#leases.get(lease)?.keys.add(key);
    return { type: 'put', entry, revision: this.#revision };
  }

  #remove(prev: Entry): void {
    this.#entries.delete(prev.key);
    const i = this.#lowerBound(prev.key);
    if (this.#sorted[i] === prev.key) this.#sorted.splice(i, 1);
    if (prev.lease !== 0) this.#leases.get(prev.lease)?.keys.delete(prev.key);
  }

  /** Index of the first key ≥ `key`. */
  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#sorted[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
