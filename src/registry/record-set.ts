import { fromBinary, toBinary } from '../api/index.js';
import type { DescMessage, MessageShape } from '../api/index.js';
import { AgentError, describe } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Store } from '../store/index.js';

/**
 * A set of registry records (NSEs or NSs) kept in a Store under one prefix, one key per name,
 * the value the record's protobuf bytes. Everything a registry server knows lives here, so several
 * servers on one etcd answer alike, and an expired lease deletes the key and every server's watch
 * sees it.
 */
export type RecordEvent<T> =
  | { readonly type: 'put'; readonly record: T }
  /** `record` is the last stored value, or only the name when the store did not say. */
  | { readonly type: 'delete'; readonly record: T | undefined; readonly name: string };

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
    const entry = await this.#store.get(this.key(name));
    return entry && this.#decode(entry.key, entry.value);
  }

  async put(name: string, record: MessageShape<D>, lease?: number): Promise<void> {
    await this.#store.put(
      this.key(name),
      toBinary(this.#schema, record),
      lease === undefined ? {} : { lease },
    );
  }

  /** True when there was a record. */
  async delete(name: string): Promise<boolean> {
    return (await this.#store.delete(this.key(name))).deleted;
  }

  async list(): Promise<{ readonly records: MessageShape<D>[]; readonly revision: number }> {
    const { entries, revision } = await this.#store.list(this.#prefix);
    const records: MessageShape<D>[] = [];
    for (const e of entries) {
      const r = this.#decode(e.key, e.value);
      if (r) records.push(r);
    }
    return { records, revision };
  }

  /** Changes after `afterRevision`; ends when `signal` aborts; throws UNAVAILABLE when the store watch breaks. */
  async *watch(afterRevision: number, signal: AbortSignal): AsyncGenerator<RecordEvent<MessageShape<D>>> {
    try {
      for await (const ev of this.#store.watch(this.#prefix, { afterRevision, signal })) {
        if (ev.type === 'put') {
          const record = this.#decode(ev.entry.key, ev.entry.value);
          if (record) yield { type: 'put', record };
        } else {
          const prev = ev.prev && this.#decode(ev.prev.key, ev.prev.value);
          yield { type: 'delete', record: prev, name: this.nameOf(ev.key) };
        }
      }
    } catch (e: unknown) {
      if (signal.aborted) return;
      throw new AgentError(
        'UNAVAILABLE',
        `the registry lost its store watch (${this.#store.description}): ${describe(e)}`,
        {
          cause: e,
          hint: 'call Find with watch=true again; it lists the current records first',
        },
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
