import { setMaxListeners } from 'node:events';
import { AgentError, describe } from '../errors/index.js';
import { Compare_CompareResult, Compare_CompareTarget, KV, Lease, Watch } from '../api/etcd.js';
import type { CompareSchema, RequestOpSchema, ResponseHeader, TxnResponse } from '../api/etcd.js';
import type { MessageInitShape } from '../api/index.js';
import { dial, formatGrpcUrl, insecure } from '../api/grpc/index.js';
import type { GrpcConnection, ServiceClient } from '../api/grpc/index.js';
import type { Clock, Random } from '../host/index.js';
import { systemClock, systemRandom } from '../host/index.js';
import type { Logger } from '../log/index.js';
import { silentLogger } from '../log/index.js';
import { aborted } from './etcd/aborted.js';
import { parseEtcdUrl } from './etcd/etcd-url.js';
import { KeySpace } from './etcd/key-space.js';
import { LeaseKeepAlives } from './etcd/lease-keep-alives.js';
import { toEntry, watchStream } from './etcd/watch-stream.js';
import { checkKey, checkRevision, checkTtl, checkValue } from './limits.js';
import { conflictError, leaseNotFoundError } from './store-errors.js';
import type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';

export interface EtcdStoreOptions {
  /** `etcd://host:port`; plaintext, so loopback only until TLS to etcd lands. */
  readonly url: string;
  /** Every key lives under this prefix in etcd (default `/nsm-agent/`), so meshes can share an etcd. */
  readonly namespace?: string;
  readonly log?: Logger;
  readonly clock?: Clock;
  /** Picks lease ids; tests may make them predictable. */
  readonly random?: Random;
  /** Deadline of each call to etcd (default 5 s). */
  readonly timeoutMs?: number;
  /** How long open() waits for etcd to answer (default 10 s). */
  readonly connectTimeoutMs?: number;
}

/** Keys per page when listing; shrinks when a page is larger than gRPC's message limit. */
const LIST_PAGE = 512;
/** Large enough for a full page of ordinary registry values, and a 1 MiB value on its own. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * The Store on etcd v3, over our own gRPC plumbing and the etcd protos in src/api/proto/etcd.
 * Several control servers share one etcd: compare-and-swap is an etcd Txn on mod_revision, leases
 * are etcd leases (TTL rounded up to whole seconds, at least etcd's minimum), and watches are etcd
 * watches, so a change made through one server reaches watchers on every server.
 *
 * Lease ids are chosen here (random, below 2^53) rather than by etcd, whose own ids do not fit a
 * JavaScript number; a collision is retried.
 */
export class EtcdStore implements Store {
  readonly description: string;
  readonly #target: string;
  readonly #conn: GrpcConnection;
  readonly #kv: ServiceClient<typeof KV>;
  readonly #lease: ServiceClient<typeof Lease>;
  readonly #watch: ServiceClient<typeof Watch>;
  readonly #keys: KeySpace;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #keepAlives: LeaseKeepAlives;
  readonly #closing = new AbortController();
  #closed = false;
  /** Calls in flight, which close() lets finish (each is bounded by its deadline). */
  readonly #inflight = new Set<Promise<unknown>>();
  /** The newest revision any answer from etcd has shown; "now" for a watch without a start. */
  #seen = 0;

  /** Connects to etcd, and fails with UNAVAILABLE if it does not answer within connectTimeoutMs. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const url = parseEtcdUrl(options.url);
    const conn = dial(formatGrpcUrl(url.grpc), {
      credentials: insecure({ allowLoopbackTcp: true }),
      defaultTimeoutMs: options.timeoutMs ?? 5_000,
      tuning: { maxReceiveMessageBytes: MAX_RESPONSE_BYTES },
    });
    const store = new EtcdStore(options, url.text, conn);
    try {
      const clock = options.clock ?? systemClock;
      await conn.waitForReady(new Date(clock.now() + (options.connectTimeoutMs ?? 10_000)));
      await store.list('\u0000probe');
    } catch (e: unknown) {
      conn.close();
      throw new AgentError('UNAVAILABLE', `cannot reach etcd at ${url.text}: ${describe(e)}`, {
        hint: 'check that etcd runs and listens there (etcd --listen-client-urls)',
        cause: e,
      });
    }
    store.#log.info({ revision: store.#seen }, 'etcd store connected');
    return store;
  }

  private constructor(options: EtcdStoreOptions, target: string, conn: GrpcConnection) {
    this.#keys = new KeySpace(options.namespace ?? '/nsm-agent/');
    this.#target = target;
    this.description = `${target}${this.#keys.namespace}`;
    this.#conn = conn;
    this.#kv = conn.client(KV);
    this.#lease = conn.client(Lease);
    this.#watch = conn.client(Watch);
    this.#random = options.random ?? systemRandom;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'store', store: this.description });
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    // Every open watch listens on this signal; hundreds of watches are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#keepAlives = new LeaseKeepAlives({
      open: () => this.#lease.leaseKeepAlive({ signal: this.#closing.signal }),
      clock: options.clock ?? systemClock,
      timeoutMs: this.#timeoutMs,
      target,
    });
  }

  async get(key: string): Promise<Entry | undefined> {
    checkKey(key);
    const r = await this.#call('get', () => this.#kv.range({ key: this.#keys.encode(key) }));
    this.#note(r.header);
    return toEntry(r.kvs[0], this.#keys);
  }

  async list(prefix: string): Promise<ListResult> {
    const { key, rangeEnd } = this.#keys.range(prefix);
    let limit = LIST_PAGE;
    let from = key;
    let revision = 0;
    const entries: Entry[] = [];
    // Pages read at one revision form one consistent list; bounded by the keys in the range.
    for (;;) {
      let r;
      try {
        r = await this.#call('list', () =>
          this.#kv.range({ key: from, rangeEnd, limit: BigInt(limit), revision: BigInt(revision) }),
        );
      } catch (e: unknown) {
        if (AgentError.is(e, 'RESOURCE_EXHAUSTED') && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 8));
          continue;
        }
        throw e;
      }
      this.#note(r.header);
      if (revision === 0) revision = Number(r.header?.revision ?? 0);
      for (const kv of r.kvs) {
        const e = toEntry(kv, this.#keys);
        if (e) entries.push(e);
      }
      const last = r.kvs[r.kvs.length - 1];
      if (!r.more || !last) break;
      from = Uint8Array.from([...last.key, 0]);
    }
    return { entries, revision };
  }

  async put(
    key: string,
    value: Uint8Array,
    options: PutOptions = {},
  ): Promise<{ readonly revision: number }> {
    checkKey(key);
    checkValue(value);
    const lease = options.lease ?? 0;
    const k = this.#keys.encode(key);
    const put = { key: k, value, lease: BigInt(lease) };
    try {
      if (options.ifModRevision === undefined) {
        const r = await this.#call('put', () => this.#kv.put(put));
        return { revision: this.#note(r.header) };
      }
      checkRevision(options.ifModRevision, 'ifModRevision');
      const expected = options.ifModRevision;
      const r = await this.#txn(k, expected, { request: { case: 'requestPut', value: put } });
      if (!r.succeeded) throw conflictError(key, expected, actualModRevision(r));
      return { revision: this.#note(r.header) };
    } catch (e: unknown) {
      if (lease !== 0 && AgentError.is(e, 'NOT_FOUND')) throw leaseNotFoundError(lease);
      throw e;
    }
  }

  async delete(
    key: string,
    options: DeleteOptions = {},
  ): Promise<{ readonly revision: number; readonly deleted: boolean }> {
    checkKey(key);
    const k = this.#keys.encode(key);
    if (options.ifModRevision === undefined) {
      const r = await this.#call('delete', () => this.#kv.deleteRange({ key: k }));
      return { revision: this.#note(r.header), deleted: r.deleted > 0n };
    }
    checkRevision(options.ifModRevision, 'ifModRevision');
    const expected = options.ifModRevision;
    const r = await this.#txn(k, expected, { request: { case: 'requestDeleteRange', value: { key: k } } });
    if (!r.succeeded) throw conflictError(key, expected, actualModRevision(r));
    const op = r.responses[0]?.response;
    const deleted = op?.case === 'responseDeleteRange' && op.value.deleted > 0n;
    return { revision: this.#note(r.header), deleted };
  }

  async grantLease(ttlMs: number): Promise<number> {
    checkTtl(ttlMs);
    const ttl = BigInt(Math.ceil(ttlMs / 1000));
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = this.#leaseId();
      try {
        const r = await this.#call('lease grant', () => this.#lease.leaseGrant({ TTL: ttl, ID: BigInt(id) }));
        if (r.error) {
          throw new AgentError('UNAVAILABLE', `etcd at ${this.#target} refused a lease: ${r.error}`, {
            hint: 'check etcd’s health and retry',
          });
        }
        return id;
      } catch (e: unknown) {
        // etcd answers FAILED_PRECONDITION "lease already exists" for an id in use: pick another.
        if (!AgentError.is(e, 'FAILED_PRECONDITION')) throw e;
      }
    }
    throw new AgentError('UNAVAILABLE', `etcd at ${this.#target} refused 5 fresh lease ids`, {
      hint: 'check that nothing else grants leases with our id range; retry',
    });
  }

  async keepAlive(lease: number): Promise<void> {
    const ttl = await this.#call('lease keep-alive', () => this.#keepAlives.keepAlive(BigInt(lease)));
    if (ttl <= 0) throw leaseNotFoundError(lease);
  }

  async revokeLease(lease: number): Promise<void> {
    try {
      const r = await this.#call('lease revoke', () => this.#lease.leaseRevoke({ ID: BigInt(lease) }));
      this.#note(r.header);
    } catch (e: unknown) {
      if (!AgentError.is(e, 'NOT_FOUND')) throw e;
    }
  }

  watch(
    prefix: string,
    options: { readonly afterRevision?: number; readonly signal: AbortSignal },
  ): AsyncIterable<WatchEvent> {
    if (this.#closed) throw closedError(this.description);
    const after = options.afterRevision ?? this.#seen;
    if (options.afterRevision !== undefined) checkRevision(after, 'afterRevision');
    return {
      [Symbol.asyncIterator]: () =>
        watchStream({
          client: this.#watch,
          keys: this.#keys,
          prefix,
          after,
          afterIsNow: options.afterRevision === undefined,
          signal: options.signal,
          closing: this.#closing.signal,
          target: this.#target,
          onHeader: (h) => {
            this.#note(h);
          },
        }),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    this.#closing.abort(closedError(this.description));
    this.#keepAlives.close();
    this.#conn.close();
  }

  /** A Txn that runs `op` only if the key's mod_revision is `expected` (0: the key must not exist). */
  #txn(
    key: Uint8Array,
    expected: number,
    op: MessageInitShape<typeof RequestOpSchema>,
  ): Promise<TxnResponse> {
    const compare: MessageInitShape<typeof CompareSchema> = {
      result: Compare_CompareResult.EQUAL,
      target: Compare_CompareTarget.MOD,
      key,
      targetUnion: { case: 'modRevision', value: BigInt(expected) },
    };
    return this.#call('compare-and-swap', () =>
      this.#kv.txn({
        compare: [compare],
        success: [op],
        // On a conflict, read the key so the error can say what its revision is.
        failure: [{ request: { case: 'requestRange', value: { key } } }],
      }),
    );
  }

  /** Runs a call to etcd, turning transport failures into UNAVAILABLE with a next step. */
  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.description);
    const call = fn();
    this.#inflight.add(call);
    try {
      return await call;
    } catch (e: unknown) {
      if (aborted(this.#closing.signal)) throw closedError(this.description);
      if (
        AgentError.is(e, 'UNAVAILABLE') ||
        AgentError.is(e, 'DEADLINE_EXCEEDED') ||
        AgentError.is(e, 'CANCELLED')
      ) {
        throw new AgentError(
          'UNAVAILABLE',
          `etcd at ${this.#target} did not complete ${what}: ${describe(e)}`,
          {
            hint: 'check that etcd is running and reachable; the call can be retried',
            cause: e,
          },
        );
      }
      throw e;
    } finally {
      this.#inflight.delete(call);
    }
  }

  /** Remembers the revision of an answer and returns it. */
  #note(h: ResponseHeader | undefined): number {
    const rev = Number(h?.revision ?? 0);
    if (rev > this.#seen) this.#seen = rev;
    return rev;
  }

  #leaseId(): number {
    const b = this.#random.bytes(7);
    // 52 random bits, never 0 (0 means "no lease").
    let n = 0;
    for (const x of b) n = n * 256 + x;
    return (n % 2 ** 52) + 1;
  }
}

function actualModRevision(r: TxnResponse): number {
  const op = r.responses[0]?.response;
  if (op?.case !== 'responseRange') return 0;
  return Number(op.value.kvs[0]?.modRevision ?? 0);
}

function closedError(description: string): AgentError {
  return new AgentError('UNAVAILABLE', `the store ${description} is closed`, {
    hint: 'open it again; it was closed by its owner',
  });
}
