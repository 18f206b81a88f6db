/**
 * Time as a port. Code that waits, schedules or reads the time takes a Clock, so tests move a fake
 * clock (src/host/fake/clock.ts) instead of sleeping.
 */
export interface TimerHandle {
  /** Cancels the timer; calling it again does nothing. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `fn` once after `ms`; the timer never keeps the process alive on its own. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    // Node fires a timeout longer than 2^31-1 ms (~24.8 days) at once: wait such delays in legs.
    let t: NodeJS.Timeout;
    const arm = (left: number): void => {
      const leg = Math.min(Math.max(0, left), MAX_TIMEOUT_MS);
      t = setTimeout(() => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : fn()), leg);
      t.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    // Unlike setTimer, a sleep keeps the process alive: someone is waiting for it (a CLI retry loop
    // would otherwise exit silently in the middle of its backoff).
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(t);
        reject(signal?.reason as Error);
      };
      const t = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
};

/** sleep() built on setTimer, shared by the real and the fake clock. */
export function sleepWith(clock: Pick<Clock, 'setTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason as Error);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `task` now (or after `firstInMs`) and then again after the delay each run returns, until stop(). The task handles
 * its own errors (a throw is not retried: return the retry delay instead). stop() cancels the
 * next run and waits for one in flight, so the caller can close what the task uses.
 */
export function runPeriodically(
  clock: Clock,
  task: () => Promise<number>,
  firstInMs?: number,
): { stop(): Promise<void> } {
  let timer: TimerHandle | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const run = (): void => {
    running = task().then((nextMs) => {
      if (!stopped) timer = clock.setTimer(nextMs, run);
    });
  };
  if (firstInMs === undefined) run();
  else timer = clock.setTimer(firstInMs, run);
  return {
    stop: async () => {
      stopped = true;
      timer?.cancel();
      await running;
    },
  };
}
