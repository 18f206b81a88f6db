/**
 * The registry's storage contract (issue B §4): one interface, two implementations — the embedded
 * store (default: no extra process, durable log in the data dir) and etcd (several control servers
 * share it, watches propagate across servers). The same contract test suite runs against both.
 *
 * The model is etcd's, deliberately small: a flat ordered key space of byte values, a global revision
 * that every change increments, compare-and-swap on a key's modRevision, leases that delete their keys
 * when they expire, and prefix watches that start at a revision so no change is missed between a
 * list and a watch.
 */

export interface Entry {
  readonly key: string;
  /**
   * Read-only: in-process stores hand out their own copy (copying made listing 10,000 entries 7×
   * slower) and share it with watchers. Copy before modifying. Puts copy what they are given.
   */
  readonly value: Uint8Array;
  /** Store revision of the last change of this key. */
  readonly modRevision: number;
  /** Store revision when the key was created (since its last deletion). */
  readonly createRevision: number;
  /** Lease the key is attached to, 0 for none. */
  readonly lease: number;
}

export interface PutOptions {
  /**
   * Compare-and-swap: the write happens only if the key's current modRevision equals this
   * (0 = the key must not exist). On mismatch the put fails with FAILED_PRECONDITION ("conflict").
   */
  readonly ifModRevision?: number;
  /** Attach the key to a lease; the key is deleted when the lease expires or is revoked. */
  readonly lease?: number;
}

export interface DeleteOptions {
  /** Compare-and-swap as for put; a missing key with ifModRevision > 0 is a conflict. */
  readonly ifModRevision?: number;
}

export type WatchEvent =
  | { readonly type: 'put'; readonly entry: Entry; readonly revision: number }
  | { readonly type: 'delete'; readonly key: string; readonly revision: number; readonly prev?: Entry };

export interface ListResult {
  readonly entries: readonly Entry[];
  /**
   * Store revision the list was read at. Pass it as watch's `afterRevision` to see every later change
   * (the first event has revision ≥ revision + 1): no change falls between a list and its watch.
   */
  readonly revision: number;
}

export interface Store {
  /** What it is, for logs and status: `embedded:/var/lib/…` or `etcd://host:port`. */
  readonly description: string;
  get(key: string): Promise<Entry | undefined>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<ListResult>;
  /** Resolves only when the write is durable in the store (acknowledged = survives kill -9). */
  put(key: string, value: Uint8Array, options?: PutOptions): Promise<{ readonly revision: number }>;
  /** Resolves `deleted: false` when there was no such key (and no ifModRevision was given). */
  delete(
    key: string,
    options?: DeleteOptions,
  ): Promise<{ readonly revision: number; readonly deleted: boolean }>;
  /** A lease of `ttlMs`; keys attached to it are deleted (with watch events) when it expires. */
  grantLease(ttlMs: number): Promise<number>;
  /** Extends the lease by its full TTL; NOT_FOUND if it already expired. */
  keepAlive(lease: number): Promise<void>;
  /** Deletes the lease's keys (with watch events); revoking an unknown or expired lease does nothing. */
  revokeLease(lease: number): Promise<void>;
  /**
   * Changes under `prefix`, starting after `afterRevision` (default: now). Events arrive in revision
   * order. The iterator ends when `signal` aborts; it throws UNAVAILABLE if the store connection is lost
   * (the caller lists again and re-watches), or FAILED_PRECONDITION if `afterRevision` was compacted.
   */
  watch(
    prefix: string,
    options: { readonly afterRevision?: number; readonly signal: AbortSignal },
  ): AsyncIterable<WatchEvent>;
  /** Waits for writes in flight, ends open watches with UNAVAILABLE; later calls fail UNAVAILABLE. */
  close(): Promise<void>;
}
