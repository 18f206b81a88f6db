/**
 * Group commit for a task that writes out current state (a file rewritten from memory, say):
 * calls that arrive while a run is in progress share the one run after it, instead of queueing a
 * run each. Every call resolves (or rejects) with the first run that *starts* after the call, so
 * it always covers what the caller changed before calling; runs never overlap. 20 connections set
 * up together cost two rewrites of the hosts file, not twenty.
 */
export function coalescing(task: () => Promise<void>): () => Promise<void> {
  let tail: Promise<unknown> = Promise.resolve();
  let queued: Promise<void> | undefined;
  return () => {
    if (queued !== undefined) return queued;
    const run = tail.then(() => {
      queued = undefined; // from here on, a change may be missed by this run: callers queue anew
      return task();
    });
    queued = run;
    tail = run.catch(() => undefined);
    return run;
  };
}
