import type { Clock, TimerHandle } from '../clock.js';
import { sleepWith } from '../clock.js';

/**
 * A clock that moves only when told. Timers fire in due-time order (ties in creation order)
 * during advance(); a timer set by a firing timer fires in the same advance() if it falls due.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { due: number; fn: () => void }>();

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { due: this.#now + Math.max(0, ms), fn });
    return { cancel: () => this.#timers.delete(id) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Number of timers not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing due timers, and lets promise callbacks run between timers
   * so async code scheduled by one timer is observed before the next fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await flushMicrotasks();
      const next = this.#nextDue(target);
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  #nextDue(limit: number): { id: number; due: number; fn: () => void } | undefined {
    let best: { id: number; due: number; fn: () => void } | undefined;
    for (const [id, t] of this.#timers) {
      if (t.due <= limit && (!best || t.due < best.due || (t.due === best.due && id < best.id))) {
        best = { id, ...t };
      }
    }
    return best;
  }
}

/** Lets queued promise callbacks run (several turns, for chains of awaits). */
export async function flushMicrotasks(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
  await new Promise<void>((r) => setImmediate(r));
}
