import { fromBinary, toBinary } from '../api/index.js';
import type { DescMessage, MessageShape } from '../api/index.js';
import { AgentError, describe } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Store } from '../store/index.js';

/**
 * A set of registry records (NSEs or NSs) kept in a Store under one prefix, one key per name,
 * the value the record's protobuf bytes. The store is the truth, so several servers on one etcd
 * answer alike, and an expired lease deletes the key and every server's watch sees it.
 */
export type RecordEvent<T> =
  | { readonly type: 'put'; readonly name: string; readonly record: T; readonly revision: number }
  /** `record` is the last stored value, undefined when the store did not say. */
  | {
      readonly type: 'delete';
      readonly name: string;
      readonly record: T | undefined;
      readonly revision: number;
    };

export interface NamedRecord<T> {
  readonly name: string;
  readonly record: T;
}

export class RecordSet<D extends DescMessage> {
  readonly #store: Store;
  readonly #schema: D;
  readonly #prefix: string;
  readonly #log: Logger;

  constructor(store: Store, schema: D, prefix: string, log: Logger) {
    this.#store = store;
    this.#schema = schema;
    this.#prefix = prefix;
    this.#log = log;
  }

  key(name: string): string {
    // Names may hold '/', '@' and anything else; keys stay one flat level under the prefix.
    return this.#prefix + encodeURIComponent(name);
  }

  nameOf(key: string): string {
    return decodeURIComponent(key.slice(this.#prefix.length));
  }

  async get(name: string): Promise<MessageShape<D> | undefined> {
    return (await this.getWithLease(name))?.record;
  }

  /** The record and the lease its key is attached to (0 for none). */
  async getWithLease(
    name: string,
  ): Promise<{ readonly record: MessageShape<D>; readonly lease: number } | undefined> {
    const entry = await this.#store.get(this.key(name));
    if (!entry) return undefined;
    const record = this.#decode(entry.key, entry.value);
    return record && { record, lease: entry.lease };
  }

  /** Returns the store revision of the write. */
  async put(name: string, record: MessageShape<D>, lease?: number): Promise<number> {
    const bytes = toBinary(this.#schema, record);
    return (await this.#store.put(this.key(name), bytes, lease === undefined ? {} : { lease })).revision;
  }

  delete(name: string): Promise<{ readonly deleted: boolean; readonly revision: number }> {
    return this.#store.delete(this.key(name));
  }

  async list(): Promise<{ readonly records: NamedRecord<MessageShape<D>>[]; readonly revision: number }> {
    const { entries, revision } = await this.#store.list(this.#prefix);
    const records: NamedRecord<MessageShape<D>>[] = [];
    for (const e of entries) {
      const record = this.#decode(e.key, e.value);
      if (record) records.push({ name: this.nameOf(e.key), record });
    }
    return { records, revision };
  }

  /** Changes after `afterRevision`; ends when `signal` aborts; throws UNAVAILABLE when the store watch breaks. */
  async *watch(afterRevision: number, signal: AbortSignal): AsyncGenerator<RecordEvent<MessageShape<D>>> {
    try {
      for await (const ev of this.#store.watch(this.#prefix, { afterRevision, signal })) {
        if (ev.type === 'put') {
          const record = this.#decode(ev.entry.key, ev.entry.value);
          if (record) yield { type: 'put', name: this.nameOf(ev.entry.key), record, revision: ev.revision };
        } else {
          const prev = ev.prev && this.#decode(ev.prev.key, ev.prev.value);
          yield { type: 'delete', name: this.nameOf(ev.key), record: prev, revision: ev.revision };
        }
      }
    } catch (e: unknown) {
      if (signal.aborted) return;
      throw new AgentError(
        'UNAVAILABLE',
        `the registry lost its store watch (${this.#store.description}): ${describe(e)}`,
        { cause: e, hint: 'it lists the records again and re-watches by itself' },
      );
    }
  }

  #decode(key: string, value: Uint8Array): MessageShape<D> | undefined {
    try {
      return fromBinary(this.#schema, value);
    } catch (e: unknown) {
      // A record we cannot read must not break every Find; it is skipped and reported.
      this.#log.error(
        { key, err: describe(e) },
        `skipping a stored ${this.#schema.typeName} that does not decode`,
      );
      return undefined;
    }
  }
}
