import type { Clock, TimerHandle } from '../host/index.js';

/**
 * One timer per lease, on the Clock port, calling `onExpire(id)` when a lease's absolute expiry time
 * is reached. Re-arming (keep-alive) replaces the timer. The store decides what expiry means.
 */
export class LeaseTimers {
  readonly #clock: Clock;
  readonly #onExpire: (id: number) => void;
  readonly #timers = new Map<number, TimerHandle>();

  constructor(clock: Clock, onExpire: (id: number) => void) {
    this.#clock = clock;
    this.#onExpire = onExpire;
  }

  arm(id: number, expiresAt: number): void {
    this.#timers.get(id)?.cancel();
    const handle = this.#clock.setTimer(Math.max(0, expiresAt - this.#clock.now()), () => {
      this.#timers.delete(id);
      this.#onExpire(id);
    });
    this.#timers.set(id, handle);
  }

  disarm(id: number): void {
    this.#timers.get(id)?.cancel();
    this.#timers.delete(id);
  }

  clear(): void {
    for (const t of this.#timers.values()) t.cancel();
    this.#timers.clear();
  }
}
