import { describe } from '../../errors/index.js';

/** A record the cache keys by name (NetworkService, NetworkServiceEndpoint). */
export interface Named {
  readonly name: string;
}

export type CacheListener<T> = (record: T, deleted: boolean) => void;

/**
 * The last known upstream state of one registry kind, fed by one upstream watch. After the watch is
 * lost and re-subscribed, `beginResync` … `endResync` removes what vanished meanwhile: the watch is
 * opened first and a full listing follows, so a record neither listed nor seen by the new watch is
 * gone upstream (anything deleted after the listing reaches us through the watch).
 */
export class RecordCache<T extends Named> {
  readonly #records = new Map<string, T>();
  readonly #listeners = new Set<CacheListener<T>>();
  #touched: Set<string> | undefined;
  /** Optional secondary index: key → names of the records that have it (see withKey). */
  readonly #keysOf: ((record: T) => readonly string[]) | undefined;
  readonly #byKey = new Map<string, Set<string>>();

  /**
   * `indexBy`: the keys a record is found by with withKey() (an endpoint's network service names),
   * so a lookup reads the few records that can match instead of every record in the mesh.
   */
  constructor(options: { readonly indexBy?: (record: T) => readonly string[] } = {}) {
    this.#keysOf = options.indexBy;
  }

  get size(): number {
    return this.#records.size;
  }

  get(name: string): T | undefined {
    return this.#records.get(name);
  }

  values(): Iterable<T> {
    return this.#records.values();
  }

  /** The records indexed under `key` (empty without an index or a match). */
  withKey(key: string): T[] {
    const names = this.#byKey.get(key);
    if (!names) return [];
    const out: T[] = [];
    for (const n of names) {
      const r = this.#records.get(n);
      if (r) out.push(r);
    }
    return out;
  }

  upsert(record: T): void {
    const before = this.#records.get(record.name);
    if (this.#keysOf) {
      const keys = this.#keysOf(record);
      const old = before ? this.#keysOf(before) : [];
      for (const k of old) if (!keys.includes(k)) this.#unindex(k, record.name);
      for (const k of keys) {
        let names = this.#byKey.get(k);
        if (!names) this.#byKey.set(k, (names = new Set()));
        names.add(record.name);
      }
    }
    this.#records.set(record.name, record);
    this.#touched?.add(record.name);
    this.#emit(record, false);
  }

  remove(name: string): void {
    const had = this.#records.get(name);
    this.#touched?.add(name);
    if (!had) return;
    this.#records.delete(name);
    if (this.#keysOf) for (const k of this.#keysOf(had)) this.#unindex(k, name);
    this.#emit(had, true);
  }

  beginResync(): void {
    this.#touched = new Set();
  }

  /** `listed`: every name the listing returned; the rest, unless the watch touched them, are dropped. */
  endResync(listed: Iterable<string>): void {
    const keep = this.#touched ?? new Set<string>();
    this.#touched = undefined;
    for (const n of listed) keep.add(n);
    for (const name of [...this.#records.keys()]) if (!keep.has(name)) this.remove(name);
  }

  /** Calls `listener` on every later change; returns the unsubscribe function. */
  subscribe(listener: CacheListener<T>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #unindex(key: string, name: string): void {
    const names = this.#byKey.get(key);
    names?.delete(name);
    if (names?.size === 0) this.#byKey.delete(key);
  }

  #emit(record: T, deleted: boolean): void {
    for (const l of this.#listeners) l(record, deleted);
  }
}

/** Applies one upstream watch to a cache until it ends; resolves with why it ended (never rejects). */
export async function follow<R extends { deleted: boolean }, T extends { name: string }>(
  stream: AsyncIterable<R>,
  record: (r: R) => T | undefined,
  cache: RecordCache<T>,
): Promise<string> {
  try {
    for await (const r of stream) {
      const rec = record(r);
      if (!rec) continue;
      if (r.deleted) cache.remove(rec.name);
      else cache.upsert(rec);
    }
    return 'the upstream registry ended the watch';
  } catch (e: unknown) {
    return describe(e);
  }
}
