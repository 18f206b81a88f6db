import type { Clock, TimerHandle } from '../host/index.js';

/** setTimeout's longest delay; a later expiry is reached in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Calls `onExpire(id)` when a lease's absolute expiry time is reached, on the Clock port. Re-arming
 * (keep-alive) moves the expiry. The store decides what expiry means.
 *
 * One timer for all leases, set for the earliest expiry, over a min-heap of (expiry, id): a
 * registry holds a lease per NSE, and a timer per lease cost ~300 bytes of heap each (3 MB at 10k
 * NSEs). A re-armed or disarmed lease leaves its old heap entry behind; it is skipped when it comes
 * up, because only the expiry in #expiries counts.
 */
export class LeaseTimers {
  readonly #clock: Clock;
  readonly #onExpire: (id: number) => void;
  /** The armed leases and their expiry times. */
  readonly #expiries = new Map<number, number>();
  /** Min-heap by expiry, as parallel arrays; may hold stale entries (see above). */
  #heapAt: number[] = [];
  #heapId: number[] = [];
  #timer: TimerHandle | undefined;
  /** When #timer fires; Infinity when none is set. */
  #timerAt = Infinity;

  constructor(clock: Clock, onExpire: (id: number) => void) {
    this.#clock = clock;
    this.#onExpire = onExpire;
  }

  arm(id: number, expiresAt: number): void {
    this.#expiries.set(id, expiresAt);
    this.#push(expiresAt, id);
    if (expiresAt < this.#timerAt) this.#schedule(expiresAt);
    this.#compactIfStale();
  }

  disarm(id: number): void {
    this.#expiries.delete(id);
    if (this.#expiries.size === 0) this.clear();
    else this.#compactIfStale();
  }

  clear(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#expiries.clear();
    this.#heapAt = [];
    this.#heapId = [];
  }

  #schedule(at: number): void {
    this.#timer?.cancel();
    this.#timerAt = at;
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, at - this.#clock.now()));
    this.#timer = this.#clock.setTimer(delay, () => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#fire();
    });
  }

  /** Expires every lease that is due, then sets the timer for the next one. */
  #fire(): void {
    const now = this.#clock.now();
    const due: number[] = [];
    while (this.#heapAt.length > 0 && (this.#heapAt[0] as number) <= now) {
      const at = this.#heapAt[0] as number;
      const id = this.#heapId[0] as number;
      this.#pop();
      if (this.#expiries.get(id) !== at) continue; // re-armed or disarmed since
      this.#expiries.delete(id);
      due.push(id);
    }
    // The callbacks may arm or disarm leases: collect first, call after, then schedule.
    for (const id of due) this.#onExpire(id);
    this.#skipStale();
    const next = this.#heapAt[0];
    if (next !== undefined && next < this.#timerAt) this.#schedule(next);
  }

  /** Drops stale entries from the top, so the timer is set for a lease that is still armed. */
  #skipStale(): void {
    while (this.#heapAt.length > 0) {
      const id = this.#heapId[0] as number;
      if (this.#expiries.get(id) === this.#heapAt[0]) return;
      this.#pop();
    }
  }

  /** Rebuilds the heap from #expiries when stale entries outnumber live ones (keep-alive churn). */
  #compactIfStale(): void {
    if (this.#heapAt.length <= 64 || this.#heapAt.length <= 2 * this.#expiries.size) return;
    this.#heapAt = [];
    this.#heapId = [];
    for (const [id, at] of this.#expiries) this.#push(at, id);
  }

  #push(at: number, id: number): void {
    const a = this.#heapAt;
    const ids = this.#heapId;
    let i = a.length;
    a.push(at);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as number) <= at) break;
      a[i] = a[parent] as number;
      ids[i] = ids[parent] as number;
      i = parent;
    }
    a[i] = at;
    ids[i] = id;
  }

  #pop(): void {
    const a = this.#heapAt;
    const ids = this.#heapId;
    const lastAt = a.pop() as number;
    const lastId = ids.pop() as number;
    const n = a.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (a[r] as number) < (a[l] as number) ? r : l;
      if ((a[c] as number) >= lastAt) break;
      a[i] = a[c] as number;
      ids[i] = ids[c] as number;
      i = c;
    }
    a[i] = lastAt;
    ids[i] = lastId;
  }
}
