import { interfaceSlot } from './desired-state.js';
import type { DesiredEntry, DesiredState } from './desired-state.js';
import type { OwnerMark } from './owner-mark.js';
import { factsOf, linkNameOf, mainTable, routeKey } from './plan.js';

/**
 * The host objects an entry has a say in, as text keys: its peer and the host routes of its remote
 * prefixes (tunnel), its addresses on the device (host), its workload netns as a whole, its veth
 * and the host routes to its addresses, and its interface's slot in the netns (netns). Two entries that share none of these make their
 * parts of the target independently of each other (see Contributors).
 */
export function objectsOf(mark: OwnerMark, key: string, e: DesiredEntry): string[] {
  const f = factsOf(e);
  switch (e.kind) {
    case 'tunnel':
      return [`p ${e.peerPublicKey}`, ...f.prefixes.map((p) => `r ${routeKey(mainTable, p)}`)];
    case 'host':
      return f.addresses.map((a) => `a ${a}`);
    case 'netns':
      return [
        `n ${f.netnsKey}`,
        `v ${linkNameOf(mark, key, e)}`,
        `i ${interfaceSlot(e)}`,
        ...f.hostRouteKeys.map((k) => `r ${k}`),
      ];
  }
}

/**
 * Which entries have a say in each host object (objectsOf) of one desired state, kept up to date
 * from one state to the next by the entries that changed. What an apply that changes a few entries
 * must look at is then the entries that have a say in an object a changed entry touches (before or
 * after the change): every other object is the same before and after, so a plan from the host as
 * the last apply left it has nothing to do for it — restricted to those entries, the plan is the
 * same as of the whole states, at a cost that does not grow with the other connections.
 */
export class Contributors {
  readonly #mark: OwnerMark;
  readonly #by = new Map<string, Set<string>>();
  #state: DesiredState | undefined;

  constructor(mark: OwnerMark) {
    this.#mark = mark;
  }

  /**
   * Moves the index from `from` to `to` (`from` with the entries under `changed` set or removed) and
   * returns the keys of every entry, in either state, with a say in an object a changed entry
   * touches in either state. The first call, or one from another state than the last `to`, indexes
   * `from` whole.
   */
  advance(from: DesiredState, to: DesiredState, changed: Iterable<string>): Set<string> {
    this.#index(from);
    this.#state = undefined;
    const objects: string[] = [];
    const keys = new Set<string>();
    const changedKeys = [...changed];
    for (const k of changedKeys) {
      const old = entryOf(from, k);
      if (old !== undefined) objects.push(...objectsOf(this.#mark, k, old));
    }
    this.#collect(objects, keys);
    for (const k of changedKeys) {
      const old = entryOf(from, k);
      if (old !== undefined) this.#remove(k, old);
      const e = entryOf(to, k);
      if (e !== undefined) {
        this.#add(k, e);
        objects.push(...objectsOf(this.#mark, k, e));
      }
    }
    this.#collect(objects, keys);
    this.#state = to;
    return keys;
  }

  /** The keys of the entries of `state` that have a say in `object` (objectsOf). */
  holders(state: DesiredState, object: string): ReadonlySet<string> {
    this.#index(state);
    return this.#by.get(object) ?? new Set();
  }

  #index(state: DesiredState): void {
    if (this.#state === state) return;
    this.#by.clear();
    for (const [k, e] of Object.entries(state.entries)) this.#add(k, e);
    this.#state = state;
  }

  #collect(objects: readonly string[], into: Set<string>): void {
    for (const o of objects) for (const k of this.#by.get(o) ?? []) into.add(k);
  }

  #add(key: string, e: DesiredEntry): void {
    for (const o of objectsOf(this.#mark, key, e)) {
      const set = this.#by.get(o);
      if (set === undefined) this.#by.set(o, new Set([key]));
      else set.add(key);
    }
  }

  #remove(key: string, e: DesiredEntry): void {
    for (const o of objectsOf(this.#mark, key, e)) {
      const set = this.#by.get(o);
      set?.delete(key);
      if (set?.size === 0) this.#by.delete(o);
    }
  }
}

/** `state` with only the entries under `keys` (and its device). */
export function restrictTo(state: DesiredState, keys: ReadonlySet<string>): DesiredState {
  const entries: Record<string, DesiredEntry> = {};
  for (const k of keys) {
    const e = entryOf(state, k);
    if (e !== undefined) entries[k] = e;
  }
  return { ...(state.device === undefined ? {} : { device: state.device }), entries };
}

function entryOf(state: DesiredState, key: string): DesiredEntry | undefined {
  return Object.hasOwn(state.entries, key) ? state.entries[key] : undefined;
}
