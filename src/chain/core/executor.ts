/**
 * Runs tasks one at a time in submission order. A failing task does not stop the ones queued after it.
 * This is what makes "events of one connection id run one at a time" true in begin.
 */
export class SerialExecutor {
  #tail: Promise<unknown> = Promise.resolve();
  #queued = 0;

  run<T>(task: () => Promise<T>): Promise<T> {
    this.#queued++;
    const result = this.#tail.then(task);
    this.#tail = result.then(
      () => this.#queued--,
      () => this.#queued--,
    );
    return result;
  }

  /** Tasks submitted and not yet finished (including the running one). */
  get queued(): number {
    return this.#queued;
  }
}
