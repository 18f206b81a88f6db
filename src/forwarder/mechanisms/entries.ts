import { describe } from '../../errors/index.js';
import type { Connection, IPContext, Mechanism, NetworkServiceRequest } from '../../api/index.js';
import { ContextKey } from '../../chain/core/index.js';
import type { ChainContext, Next } from '../../chain/core/index.js';
import type { DesiredEntry } from '../desired-state.js';
import { entryKey } from '../desired-state.js';

/**
 * What a mechanism element needs of the forwarder: its own entries, read and set (each set applies).
 * `ctx` is the request or close the change belongs to, for an implementation that does more than
 * apply (the daemon's data plane journals, unless the request's edge does).
 */
export interface ForwarderEntries {
  entry(key: string): DesiredEntry | undefined;
  setEntry(key: string, entry: DesiredEntry | undefined, ctx?: ChainContext): Promise<unknown>;
  /** Several entries in one apply. */
  setEntries(entries: ReadonlyMap<string, DesiredEntry | undefined>, ctx?: ChainContext): Promise<unknown>;
}

/**
 * Entries that mechanism elements further down one request set from their answers, for the first
 * mechanism element of the request (the outermost) to apply together with its own: one apply per
 * side and connection instead of one per element (the KERNEL and WIREGUARD elements of a hop both
 * set theirs on the way back up, one right after the other). Carried in the ChainContext; an
 * element that finds no batch of its forwarder there applies its own entries as before.
 */
interface EntryBatch {
  readonly forwarder: ForwarderEntries;
  readonly changes: Map<string, DesiredEntry | undefined>;
}

const batchKey = new ContextKey<EntryBatch>('forwarder entries set further down this request');
/** The same for Close: the entries removed further down go with the outer element's removal. */
const closeBatchKey = new ContextKey<EntryBatch>('forwarder entries removed further down this close');

function batchOf(
  ctx: ChainContext,
  forwarder: ForwarderEntries,
  key: ContextKey<EntryBatch> = batchKey,
): EntryBatch | undefined {
  const b = ctx.get(key);
  return b?.forwarder === forwarder ? b : undefined;
}

/** Which end of the connection this host serves: the client's (NSC) or the endpoint's (NSE). */
export type ConnectionSide = 'client' | 'endpoint';

/** The addresses of one side (`src_ip_addrs` for the client, `dst_ip_addrs` for the endpoint). */
export function sideAddresses(ip: IPContext | undefined, side: ConnectionSide): string[] {
  return [...((side === 'client' ? ip?.srcIpAddrs : ip?.dstIpAddrs) ?? [])];
}

/**
 * What lies on the far side, seen from `side`: the other side's addresses plus the routes this side
 * is told to install (`src_routes` lead the client to the endpoint side, `dst_routes` the other way).
 */
export function farPrefixes(ip: IPContext | undefined, side: ConnectionSide): string[] {
  const other = side === 'client' ? 'endpoint' : 'client';
  const routes = (side === 'client' ? ip?.srcRoutes : ip?.dstRoutes) ?? [];
  return [...new Set([...sideAddresses(ip, other), ...routes.map((r) => r.prefix).filter((p) => p !== '')])];
}

function sameEntry(a: DesiredEntry | undefined, b: DesiredEntry | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The pattern every mechanism element follows (STYLE.md, NSM sdk): set its own entry (before next
 * when it knows it, and again after next from the answer), and when anything after it fails put
 * back exactly what was there before this request — nothing of other elements is touched.
 */
export async function requestWithEntry(o: {
  readonly forwarder: ForwarderEntries;
  readonly part: string;
  readonly ctx: ChainContext;
  readonly request: NetworkServiceRequest;
  readonly next: Next;
  /** The entry from what is known before next; undefined: nothing to set yet. */
  readonly before?: DesiredEntry;
  /** The entry from the answer; undefined: remove ours. */
  readonly after: (conn: Connection) => DesiredEntry | undefined;
}): Promise<Connection> {
  const key = entryKey(o.request.connection?.id ?? '', o.part);
  const previous = o.forwarder.entry(key);
  // Inside another mechanism element's request: its commit applies this element's entry too.
  const outer = batchOf(o.ctx, o.forwarder);
  const batch: EntryBatch | undefined =
    outer === undefined ? { forwarder: o.forwarder, changes: new Map() } : undefined;
  const nextCtx = batch === undefined ? o.ctx : o.ctx.with(batchKey, batch);
  const restore = async (): Promise<void> => {
    try {
      if (!sameEntry(o.forwarder.entry(key), previous)) await o.forwarder.setEntry(key, previous, o.ctx);
    } catch (e: unknown) {
      // The original failure is what the caller needs; the next apply retries the rest.
      o.ctx.log.error(
        { connId: o.request.connection?.id, part: o.part, err: describe(e) },
        'could not undo a mechanism entry',
      );
    }
  };
  if (o.before !== undefined && !sameEntry(o.before, previous)) {
    try {
      await o.forwarder.setEntry(key, o.before, o.ctx);
    } catch (e: unknown) {
      await restore();
      throw e;
    }
  }
  let conn: Connection;
  try {
    conn = await o.next.request(nextCtx, o.request);
  } catch (e: unknown) {
    // Entries staged further down were never applied: they are dropped with the request.
    await restore();
    throw e;
  }
  try {
    const after = o.after(conn);
    const changes = new Map(batch?.changes);
    if (!sameEntry(after, o.forwarder.entry(key))) changes.set(key, after);
    if (outer !== undefined) {
      for (const [k, e] of changes) outer.changes.set(k, e);
    } else if (changes.size === 1 && changes.has(key)) {
      await o.forwarder.setEntry(key, after, o.ctx);
    } else if (changes.size > 0) {
      await o.forwarder.setEntries(changes, o.ctx);
    }
  } catch (e: unknown) {
    await restore();
    // What was set up after this element for this request is closed again.
    try {
      await o.next.close(o.ctx, conn);
    } catch (closeErr: unknown) {
      o.ctx.log.warn(
        { connId: conn.id, err: describe(closeErr) },
        'close after a failed mechanism setup failed',
      );
    }
    throw e;
  }
  return conn;
}

/**
 * Close: the rest of the chain first, then the element's own entry, whatever the rest did. The
 * first mechanism element of a Close removes the entries of those further down with its own, in
 * one apply.
 */
export async function closeWithEntry(
  forwarder: ForwarderEntries,
  part: string,
  ctx: ChainContext,
  conn: Connection,
  next: Next,
): Promise<void> {
  const key = entryKey(conn.id, part);
  const outer = batchOf(ctx, forwarder, closeBatchKey);
  const batch: EntryBatch | undefined = outer === undefined ? { forwarder, changes: new Map() } : undefined;
  try {
    await next.close(batch === undefined ? ctx : ctx.with(closeBatchKey, batch), conn);
  } finally {
    // Closed within the request that staged it (a later element failed): it is never applied.
    batchOf(ctx, forwarder)?.changes.delete(key);
    const changes = new Map(batch?.changes);
    if (forwarder.entry(key) !== undefined) changes.set(key, undefined);
    if (outer !== undefined) {
      for (const [k, e] of changes) outer.changes.set(k, e);
    } else if (changes.size > 0) {
      await forwarder.setEntries(changes, ctx);
    }
  }
}

/**
 * The mechanism of `type` a server element works with: the connection's own (a refresh), else the
 * first acceptable preference the client offered; undefined when there is none.
 */
export function offeredMechanism(
  request: NetworkServiceRequest,
  type: string,
  acceptable: (m: Mechanism) => boolean = () => true,
): Mechanism | undefined {
  const current = request.connection?.mechanism;
  if (current?.type === type) return current;
  return request.mechanismPreferences.find((m) => m.type === type && acceptable(m));
}

/** A client element's offer: replaces any earlier preference of the same type. */
export function offerMechanism(request: NetworkServiceRequest, offer: Mechanism): void {
  request.mechanismPreferences = [
    ...request.mechanismPreferences.filter((m) => m.type !== offer.type),
    offer,
  ];
}
