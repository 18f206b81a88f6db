import type { Clock, TimerHandle } from '../../host/clock.js';

interface Entry<V> {
  readonly key: string;
  readonly at: number;
  readonly seq: number;
  /** Undefined once deleted (the entry waits in the heap until it comes up, holding nothing). */
  value: V | undefined;
}

/**
 * Per-connection deadlines of one chain element (refresh, timeout) on ONE clock timer: a min-heap
 * of entries by due time, and the timer armed for the earliest. An element with a thousand
 * connections keeps a thousand small entries — not a thousand Node timers, each with its own
 * closures and the context they hold — and fires them with one handler it gives once, so an entry
 * holds only the data the handler needs.
 *
 * Due entries fire in due-time order (ties in the order they were set), each once; setting a key
 * again replaces its entry; the clock timer is cancelled when no entry is left.
 */
export class TimerQueue<V extends object> {
  readonly #fire: (key: string, value: V) => void;
  readonly #entries = new Map<string, Entry<V>>();
  #heap: Entry<V>[] = [];
  #deleted = 0;
  #seq = 0;
  #clock: Clock | undefined;
  #timer: TimerHandle | undefined;
  #armedAt = Infinity;

  constructor(fire: (key: string, value: V) => void) {
    this.#fire = fire;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Fires `value` for `key` after `delayMs` on `clock` (the first clock given is the queue's). */
  set(clock: Clock, key: string, delayMs: number, value: V): void {
    this.#clock ??= clock;
    this.#drop(key);
    const entry: Entry<V> = { key, at: this.#clock.now() + Math.max(0, delayMs), seq: ++this.#seq, value };
    this.#entries.set(key, entry);
    this.#push(entry);
    if (entry.at < this.#armedAt) this.#arm(entry.at);
  }

  delete(key: string): void {
    if (!this.#drop(key)) return;
    if (this.#entries.size === 0) {
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#armedAt = Infinity;
      this.#heap = [];
      this.#deleted = 0;
    } else if (this.#deleted > this.#heap.length / 2) {
      // Mostly husks: rebuild from the live entries.
      this.#heap = [...this.#entries.values()].sort(earlier);
      this.#deleted = 0;
    }
  }

  #drop(key: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#entries.delete(key);
    entry.value = undefined;
    this.#deleted++;
    return true;
  }

  #arm(at: number): void {
    const clock = this.#clock;
    if (!clock) return;
    this.#timer?.cancel();
    this.#armedAt = at;
    this.#timer = clock.setTimer(Math.max(0, at - clock.now()), () => this.#run());
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = this.#clock?.now() ?? 0;
    try {
      for (let top = this.#heap[0]; top !== undefined && top.at <= now; top = this.#heap[0]) {
        this.#pop();
        if (top.value === undefined) {
          this.#deleted--;
          continue;
        }
        const value = top.value;
        this.#entries.delete(top.key);
        top.value = undefined;
        this.#fire(top.key, value);
      }
    } finally {
      // Husks at the top are dropped; the timer goes to the earliest live entry (also when a
      // handler threw: the entries after it still fire).
      while (this.#heap.length > 0 && this.#heap[0]?.value === undefined) {
        this.#pop();
        this.#deleted--;
      }
      const next = this.#heap[0];
      if (next && next.at < this.#armedAt) this.#arm(next.at);
    }
  }

  #push(entry: Entry<V>): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent];
      if (above === undefined || earlier(above, entry) <= 0) break;
      heap[i] = above;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const l = heap[2 * i + 1];
      if (l === undefined) break;
      const r = heap[2 * i + 2];
      const [child, at] = r !== undefined && earlier(r, l) < 0 ? [r, 2 * i + 2] : [l, 2 * i + 1];
      if (earlier(last, child) <= 0) break;
      heap[i] = child;
      i = at;
    }
    heap[i] = last;
  }
}

function earlier<V>(a: Entry<V>, b: Entry<V>): number {
  return a.at - b.at || a.seq - b.seq;
}
