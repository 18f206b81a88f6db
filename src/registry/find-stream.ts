import type { DescMessage, MessageShape } from '../api/index.js';
import { AgentError } from '../errors/index.js';
import type { RecordView, ViewEvent } from './record-view.js';

export interface FindOptions<T> {
  readonly watch: boolean;
  /** When the template names one record, a plain Find reads just that one. */
  readonly exactName: string | undefined;
  readonly matches: (record: T) => boolean;
  readonly send: (record: T, deleted: boolean) => Promise<void>;
  readonly signal: AbortSignal;
  /** A watcher this many changes behind is ended (RESOURCE_EXHAUSTED) instead of buffering without end. */
  readonly maxBacklog: number;
  /** Leave out puts that only renew a record (ViewEvent.renewal): the watcher asked not to hear them. */
  readonly omitRenewals?: boolean;
}

/**
 * Find as the memory registry runs it: every current match, then (watch=true) every later change
 * that matches — registrations and refreshes as they are, unregistrations and expiries with
 * deleted=true — until the client cancels. The subscription is taken in the same turn as the
 * snapshot, so nothing between them is lost or sent twice.
 */
export async function streamFind<D extends DescMessage>(
  view: RecordView<D>,
  options: FindOptions<MessageShape<D>>,
): Promise<void> {
  await view.ready();
  if (!options.watch) {
    if (options.exactName !== undefined) {
      const one = view.get(options.exactName);
      if (one && options.matches(one)) await options.send(one, false);
      return;
    }
    for (const r of [...view.values()]) {
      if (options.matches(r)) await options.send(r, false);
    }
    return;
  }

  const backlog: ViewEvent<MessageShape<D>>[] = [];
  let wake: (() => void) | undefined;
  const state = { overflow: false };
  const omitRenewals = options.omitRenewals === true;
  const unsubscribe = view.subscribe((ev) => {
    if (omitRenewals && ev.renewal === true) return;
    if (!options.matches(ev.record)) return;
    if (backlog.length >= options.maxBacklog) state.overflow = true;
    else backlog.push(ev);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  options.signal.addEventListener('abort', onAbort);
  try {
    const current = options.exactName !== undefined ? [view.get(options.exactName)] : [...view.values()];
    for (const r of current) {
      if (r && options.matches(r)) await options.send(r, false);
    }
    while (!options.signal.aborted) {
      const ev = backlog.shift();
      if (ev) {
        await options.send(ev.record, ev.deleted);
        continue;
      }
      if (state.overflow) {
        throw new AgentError(
          'RESOURCE_EXHAUSTED',
          `this watch fell more than ${options.maxBacklog} changes behind`,
          {
            hint: 'read the stream faster, or call Find with watch=true again (it starts with the current state)',
          },
        );
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    options.signal.removeEventListener('abort', onAbort);
  }
}
