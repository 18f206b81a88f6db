import type { DescMessage, MessageShape } from '../api/index.js';
import type { RecordSet } from './record-set.js';

export interface FindOptions<T> {
  readonly watch: boolean;
  /** When the template names one record, a plain Find reads just that key. */
  readonly exactName: string | undefined;
  readonly matches: (record: T) => boolean;
  /** Builds the record a delete without a stored previous value stands for (name only). */
  readonly nameOnly: (name: string) => T;
  readonly send: (record: T, deleted: boolean) => Promise<void>;
  readonly signal: AbortSignal;
}

/**
 * Find as the memory registry runs it: every current match, then (watch=true) every later change
 * that matches — registrations and refreshes as they are, unregistrations and expiries with
 * deleted=true — until the client cancels. The list and the watch meet at one store revision, so
 * nothing between them is lost or sent twice.
 */
export async function streamFind<D extends DescMessage>(
  records: RecordSet<D>,
  options: FindOptions<MessageShape<D>>,
): Promise<void> {
  if (!options.watch && options.exactName !== undefined) {
    const one = await records.get(options.exactName);
    if (one && options.matches(one)) await options.send(one, false);
    return;
  }
  const { records: current, revision } = await records.list();
  for (const r of current) {
    if (options.matches(r)) await options.send(r, false);
  }
  if (!options.watch) return;
  for await (const ev of records.watch(revision, options.signal)) {
    if (ev.type === 'put') {
      if (options.matches(ev.record)) await options.send(ev.record, false);
    } else {
      const r = ev.record ?? options.nameOnly(ev.name);
      if (options.matches(r)) await options.send(r, true);
    }
  }
}
