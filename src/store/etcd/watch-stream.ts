import { AgentError } from '../../errors/index.js';
import { Event_EventType } from '../../api/etcd.js';
import type { EtcdEvent, EtcdKeyValue, ResponseHeader } from '../../api/etcd.js';
import type { Watch } from '../../api/etcd.js';
import type { ServiceClient } from '../../api/grpc/index.js';
import { compactedError } from '../store-errors.js';
import type { Entry, WatchEvent } from '../store.js';
import type { KeySpace } from './key-space.js';
import { aborted } from './aborted.js';

export interface WatchStreamOptions {
  readonly client: ServiceClient<typeof Watch>;
  readonly keys: KeySpace;
  readonly prefix: string;
  /** Events with a revision after this one. */
  readonly after: number;
  /**
   * The caller asked for "now" and `after` is only the newest revision this client has seen. If
   * etcd compacted past it meanwhile (an idle client), nothing the caller asked for is lost:
   * start at the compaction revision instead of failing.
   */
  readonly afterIsNow: boolean;
  readonly signal: AbortSignal;
  /** Aborted (with an AgentError reason) when the store closes. */
  readonly closing: AbortSignal;
  readonly target: string;
  readonly onHeader: (h: ResponseHeader | undefined) => void;
}

/**
 * One etcd Watch stream per watch: create it at `after + 1`, turn etcd events into ours. A
 * compacted start revision is FAILED_PRECONDITION (list again); anything that ends the stream
 * while the caller still wants it is UNAVAILABLE (list again and re-watch).
 */
export async function* watchStream(o: WatchStreamOptions): AsyncGenerator<WatchEvent> {
  if (o.signal.aborted) return;
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  o.signal.addEventListener('abort', stop, { once: true });
  o.closing.addEventListener('abort', stop, { once: true });
  const { key, rangeEnd } = o.keys.range(o.prefix);
  const stream = o.client.watch({ signal: ac.signal });
  try {
    const create = (startRevision: bigint): void => {
      stream.write({
        requestUnion: { case: 'createRequest', value: { key, rangeEnd, startRevision, prevKv: true } },
      });
    };
    create(BigInt(o.after + 1));
    let restarted = false;
    for await (const r of stream) {
      o.onHeader(r.header);
      if (r.canceled) {
        if (r.compactRevision > 0n && o.afterIsNow && !restarted) {
          restarted = true;
          create(r.compactRevision);
          continue;
        }
        if (r.compactRevision > 0n) throw compactedError(o.after, Number(r.compactRevision) - 1);
        throw new AgentError('UNAVAILABLE', `etcd at ${o.target} cancelled the watch: ${r.cancelReason}`, {
          hint: 'list again and watch from the revision the list returns',
        });
      }
      for (const e of r.events) {
        const event = toWatchEvent(e, o.keys);
        if (event) yield event;
      }
    }
    if (aborted(o.signal)) return;
    throw new AgentError('UNAVAILABLE', `etcd at ${o.target} ended the watch stream`, {
      hint: 'list again and watch from the revision the list returns',
    });
  } catch (e: unknown) {
    if (aborted(o.closing)) throw o.closing.reason as Error;
    if (aborted(o.signal)) return;
    if (AgentError.is(e, 'FAILED_PRECONDITION') || AgentError.is(e, 'UNAVAILABLE')) throw e;
    throw AgentError.wrap(
      e,
      'UNAVAILABLE',
      `lost the watch stream to etcd at ${o.target}`,
      'list again and watch from the revision the list returns',
    );
  } finally {
    o.signal.removeEventListener('abort', stop);
    o.closing.removeEventListener('abort', stop);
    ac.abort();
  }
}

export function toEntry(kv: EtcdKeyValue | undefined, keys: KeySpace): Entry | undefined {
  if (!kv) return undefined;
  const key = keys.decode(kv.key);
  if (key === undefined) return undefined;
  return {
    key,
    // A copy: the decoded message's bytes are a view into the whole received buffer.
    value: kv.value.slice(),
    modRevision: Number(kv.modRevision),
    createRevision: Number(kv.createRevision),
    lease: Number(kv.lease),
  };
}

function toWatchEvent(e: EtcdEvent, keys: KeySpace): WatchEvent | undefined {
  const kv = e.kv;
  if (!kv) return undefined;
  const revision = Number(kv.modRevision);
  if (e.type === Event_EventType.DELETE) {
    const key = keys.decode(kv.key);
    if (key === undefined) return undefined;
    const prev = toEntry(e.prevKv, keys);
    return prev ? { type: 'delete', key, revision, prev } : { type: 'delete', key, revision };
  }
  const entry = toEntry(kv, keys);
  return entry && { type: 'put', entry, revision };
}
