import { isConflict } from '../store/index.js';
import type { Store } from '../store/index.js';

/**
 * Who owns a name (registry/client_allowed): the SPIFFE ID at path_ids[0] of its first
 * registration. Kept in its own key without a lease, so, as upstream (whose map entry outlives
 * expiry), an NSE that expires keeps its name for its owner; only the owner's Unregister frees it.
 * The first claim is a compare-and-swap, so two servers on one store cannot both hand out a name.
 */
export class Ownership {
  readonly #store: Store;
  readonly #prefix: string;

  constructor(store: Store, prefix: string) {
    this.#store = store;
    this.#prefix = prefix;
  }

  async owner(name: string): Promise<string | undefined> {
    const e = await this.#store.get(this.#key(name));
    return e && Buffer.from(e.value).toString('utf8');
  }

  /** Claims a free name; returns the owner afterwards (someone else's if another claim won). */
  async claim(name: string, spiffeId: string): Promise<string> {
    try {
      await this.#store.put(this.#key(name), Buffer.from(spiffeId, 'utf8'), { ifModRevision: 0 });
      return spiffeId;
    } catch (e: unknown) {
      if (!isConflict(e)) throw e;
      return (await this.owner(name)) ?? spiffeId;
    }
  }

  async release(name: string): Promise<void> {
    await this.#store.delete(this.#key(name));
  }

  #key(name: string): string {
    return this.#prefix + encodeURIComponent(name);
  }
}
