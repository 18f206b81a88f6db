import { AgentError } from '../../errors/index.js';
import type { LivenessHandlers, LivenessProber, LivenessTarget, LivenessWatch } from '../liveness/index.js';

/** Which watches a test means: a predicate, or the target fields that must be equal (`{ group }` too). */
export type LivenessMatch = Partial<LivenessTarget> | ((t: LivenessTarget) => boolean);

/** One live watch of the fake, as a test sees it. */
export interface FakeLivenessWatch {
  readonly target: LivenessTarget;
  readonly state: 'alive' | 'dead';
}

interface Entry {
  readonly target: LivenessTarget;
  readonly on: LivenessHandlers;
  state: 'alive' | 'dead';
}

/**
 * A LivenessProber for tests of its callers: nothing is pinged; the test says which targets died
 * and came back. The handlers are called the way the real prober calls them: `dead` once per loss,
 * `alive` once per recovery after a loss, never for a stopped watch. Handlers run synchronously
 * inside markDead/markAlive. Groups (LivenessTarget.group) are recorded, not acted on: the test
 * says which members die, as the real prober would find them.
 */
export class FakeLivenessProber implements LivenessProber {
  readonly #entries = new Set<Entry>();
  /** Every target ever watched, in order (stopped ones included), as given: its `group` too. */
  readonly history: LivenessTarget[] = [];
  closed = false;

  watch(target: LivenessTarget, on: LivenessHandlers): LivenessWatch {
    if (this.closed) {
      throw new AgentError('FAILED_PRECONDITION', 'the liveness prober is closed', {
        hint: 'make a new prober; a closed one does not watch',
      });
    }
    const e: Entry = { target, on, state: 'alive' };
    this.#entries.add(e);
    this.history.push(target);
    return { stop: () => void this.#entries.delete(e) };
  }

  close(): void {
    this.closed = true;
    this.#entries.clear();
  }

  /** The live watches, oldest first. */
  get watches(): readonly FakeLivenessWatch[] {
    return [...this.#entries].map((e) => ({ target: e.target, state: e.state }));
  }

  /** The targets of the live watches that match. */
  watched(match: LivenessMatch = {}): LivenessTarget[] {
    return this.#matching(match).map((e) => e.target);
  }

  /** Calls `dead(reason)` on every matching live watch that is not dead yet; returns how many. */
  markDead(match: LivenessMatch = {}, reason = 'no echo reply (fake)'): number {
    let n = 0;
    for (const e of this.#matching(match).filter((x) => x.state === 'alive')) {
      if (!this.#entries.has(e)) continue; // stopped by an earlier handler
      e.state = 'dead';
      n++;
      e.on.dead(reason);
    }
    return n;
  }

  /** Calls `alive()` on every matching live watch that is dead; returns how many. */
  markAlive(match: LivenessMatch = {}): number {
    let n = 0;
    for (const e of this.#matching(match).filter((x) => x.state === 'dead')) {
      if (!this.#entries.has(e)) continue;
      e.state = 'alive';
      n++;
      e.on.alive?.();
    }
    return n;
  }

  #matching(match: LivenessMatch): Entry[] {
    const test =
      typeof match === 'function'
        ? match
        : (t: LivenessTarget): boolean =>
            Object.entries(match).every(([k, v]) => t[k as keyof LivenessTarget] === v);
    // Snapshot: a handler may stop or start watches.
    return [...this.#entries].filter((e) => test(e.target));
  }
}
