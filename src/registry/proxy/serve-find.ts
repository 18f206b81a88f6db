import { AgentError } from '../../errors/index.js';

export interface FindChange<T> {
  readonly record: T;
  readonly deleted: boolean;
}

export interface ServeFindOptions<T> {
  readonly watch: boolean;
  /** Current matches, already filtered and in the form the local caller sees. */
  readonly snapshot: () => readonly T[];
  /** Registers for later matching changes; returns the unsubscribe function. */
  readonly subscribe: (push: (change: FindChange<T>) => void) => () => void;
  readonly send: (change: FindChange<T>) => Promise<void>;
  readonly signal: AbortSignal;
  /** A local watcher this many changes behind is ended rather than buffered without bound. */
  readonly maxBacklog: number;
}

/**
 * A local Find served from the cache: watch=false sends the current matches and ends; watch=true
 * subscribes first (so nothing between the snapshot and the subscription is lost), sends the
 * snapshot, then every change until the caller cancels.
 */
export async function serveFind<T>(options: ServeFindOptions<T>): Promise<void> {
  const { send, signal } = options;
  if (!options.watch) {
    for (const record of options.snapshot()) await send({ record, deleted: false });
    return;
  }
  const queue: FindChange<T>[] = [];
  const backlog = { overflow: false };
  let wake: (() => void) | undefined;
  const unsubscribe = options.subscribe((change) => {
    if (queue.length >= options.maxBacklog) backlog.overflow = true;
    else queue.push(change);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (const record of options.snapshot()) await send({ record, deleted: false });
    for (;;) {
      if (backlog.overflow) {
        throw new AgentError(
          'RESOURCE_EXHAUSTED',
          `the watch fell more than ${options.maxBacklog} changes behind and was ended`,
          { hint: 'read the stream faster, or Find again to get the current state' },
        );
      }
      const next = queue.shift();
      if (next) {
        await send(next);
        continue;
      }
      if (signal.aborted) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
