/**
 * Batches concurrent submissions into one flush: while a flush (write + fsync) runs, new items wait
 * in the next batch, so many writers share one fsync and throughput grows with concurrency. Items
 * are flushed in submission order; each submitter learns when its batch is durable, or why not.
 */
export class GroupCommit<T> {
  readonly #flush: (items: readonly T[]) => Promise<void>;
  #queue: { item: T; resolve: () => void; reject: (e: Error) => void }[] = [];
  #running: Promise<void> | undefined;

  constructor(flush: (items: readonly T[]) => Promise<void>) {
    this.#flush = flush;
  }

  submit(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#running ??= this.#loop();
    });
  }

  /** Resolves when everything submitted so far has been flushed (or failed). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #loop(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        try {
          await this.#flush(batch.map((b) => b.item));
          for (const b of batch) b.resolve();
        } catch (e: unknown) {
          const err = e instanceof Error ? e : new Error(String(e));
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}
