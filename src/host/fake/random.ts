import type { Random } from '../random.js';

/**
 * Deterministic randomness for tests: ids are `<prefix>-1`, `<prefix>-2`, …; floats cycle through
 * the given values; bytes are a counter.
 */
export class SequenceRandom implements Random {
  #n = 0;
  #f = 0;
  #b = 0;

  constructor(
    readonly prefix = 'id',
    readonly floats: readonly number[] = [0.5],
  ) {}

  uuid(): string {
    return `${this.prefix}-${++this.#n}`;
  }

  float(): number {
    const v = this.floats[this.#f++ % this.floats.length];
    return v ?? 0.5;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#b++ & 0xff;
    return out;
  }
}
