/**
 * Runs tasks one at a time in submission order. A failing task does not stop the ones queued after it.
 * This is what makes "events of one connection id run one at a time" true in begin.
 *
 * There is one per connection, idle nearly always: an idle executor holds no promise.
 */
export class SerialExecutor {
  #tail: Promise<unknown> | undefined;
  #queued = 0;

  run<T>(task: () => Promise<T>): Promise<T> {
    this.#queued++;
    const result = (this.#tail ?? Promise.resolve()).then(task);
    const settled = (): void => {
      if (--this.#queued === 0 && this.#tail === tail) this.#tail = undefined;
    };
    const tail = result.then(settled, settled);
    this.#tail = tail;
    return result;
  }

  /** Tasks submitted and not yet finished (including the running one). */
  get queued(): number {
    return this.#queued;
  }
}
