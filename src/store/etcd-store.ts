import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError, describe } from '../errors/index.js';
import { Compare_CompareResult, Compare_CompareTarget } from '../api/etcd.js';
import type { CompareSchema, RequestOpSchema, ResponseHeader, TxnResponse } from '../api/etcd.js';
import type { MessageInitShape } from '../api/index.js';
import { insecure } from '../api/grpc/index.js';
import type { Clock, Random } from '../host/index.js';
import { systemClock, systemRandom } from '../host/index.js';
import type { Logger } from '../log/index.js';
import { silentLogger } from '../log/index.js';
import { aborted } from './etcd/aborted.js';
import { diagnoseEtcdEndpoint } from './etcd/diagnose.js';
import type { EndpointDiagnosis } from './etcd/diagnose.js';
import { EtcdMembers } from './etcd/etcd-members.js';
import type { EtcdMember } from './etcd/etcd-members.js';
import { etcdChannelCredentials, loadEtcdTls } from './etcd/etcd-tls.js';
import type { EtcdTlsFiles, EtcdTlsMaterial } from './etcd/etcd-tls.js';
import { parseEtcdUrl } from './etcd/etcd-url.js';
import type { EtcdUrl } from './etcd/etcd-url.js';
import { KeySpace } from './etcd/key-space.js';
import { LeaseKeepAlives } from './etcd/lease-keep-alives.js';
import { toEntry, watchStream } from './etcd/watch-stream.js';
import { checkKey, checkRevision, checkTtl, checkValue } from './limits.js';
import { conflictError, leaseNotFoundError } from './store-errors.js';
import type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';

export interface EtcdStoreOptions {
  /**
   * `etcds://host:port[,host:port…]` (TLS; `tls` says with which CA and client certificate) or
   * `etcd://127.0.0.1:PORT[,…]` (plaintext, loopback only). Several members: the first that answers
   * is used, the next one takes over when it fails.
   */
  readonly url: string;
  /** Required for etcds://, refused for etcd://. */
  readonly tls?: EtcdTlsFiles;
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
/** Pause between rounds over the members while open() waits for etcd. */
const CONNECT_RETRY_MS = 200;
/** Bound of the one-off connection made to explain a failure. */
const DIAGNOSE_TIMEOUT_MS = 3_000;

/**
 * Whether a failed call may be sent again to another member. Reads, revocations and keep-alives
 * may; a write only when it never left (grpc-js had no connection to send it on), because a write
 * that reached a member which then failed may have been committed, and a compare-and-swap sent
 * again would then conflict with itself.
 */
type Retry = 'idempotent' | 'unsent-only';

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
  readonly #members: EtcdMembers;
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

  /**
   * Reads the TLS files, connects to the first member that answers, and fails with UNAVAILABLE if
   * none does within connectTimeoutMs — or at once with CONFIG_INVALID when a member shows a TLS
   * mismatch (wrong CA, wrong name, client certificate wanted or refused), naming the cause.
   */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const url = parseEtcdUrl(options.url);
    if (url.tls && options.tls === undefined) {
      throw new AgentError(
        'CONFIG_INVALID',
        `${url.text} needs the CA that signed etcd’s server certificate`,
        {
          hint: 'pass --store-ca <file> (and --store-cert/--store-key when etcd runs with --client-cert-auth)',
        },
      );
    }
    if (!url.tls && options.tls !== undefined) {
      throw new AgentError(
        'CONFIG_INVALID',
        `--store-ca/--store-cert/--store-key apply to etcds:// only, and ${url.text} is plaintext`,
        { hint: `use ${url.text.replace(/^etcd:/, 'etcds:')} for TLS, or leave the TLS files out` },
      );
    }
    const tls = options.tls
      ? await loadEtcdTls(options.tls, (options.clock ?? systemClock).now())
      : undefined;
    const members = new EtcdMembers(
      url,
      (endpoint) => (tls ? etcdChannelCredentials(tls, endpoint) : insecure({ allowLoopbackTcp: true })),
      { defaultTimeoutMs: options.timeoutMs ?? 5_000, maxReceiveMessageBytes: MAX_RESPONSE_BYTES },
    );
    const store = new EtcdStore(options, url, members);
    try {
      await store.#connect(url, tls, options.connectTimeoutMs ?? 10_000);
    } catch (e: unknown) {
      members.close();
      throw e;
    }
    store.#log.info(
      { revision: store.#seen, member: members.current().member.endpoint.text },
      'etcd store connected',
    );
    return store;
  }

  private constructor(options: EtcdStoreOptions, url: EtcdUrl, members: EtcdMembers) {
    this.#keys = new KeySpace(options.namespace ?? '/nsm-agent/');
    this.#target = url.text;
    this.description = `${url.text}${this.#keys.namespace}`;
    this.#members = members;
    this.#random = options.random ?? systemRandom;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'store', store: this.description });
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    // Every open watch listens on this signal; hundreds of watches are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#keepAlives = new LeaseKeepAlives({
      // Opened on the member in use; reopened (there) after it breaks or the store moves on.
      open: () => this.#member().lease.leaseKeepAlive({ signal: this.#closing.signal }),
      clock: options.clock ?? systemClock,
      timeoutMs: this.#timeoutMs,
      target: url.text,
    });
  }

  /**
   * Rounds over the members until one answers a read. Wall-clock time, not the store's clock:
   * this waits for real sockets, whose gRPC deadlines are wall-clock too. After the first failed
   * round each member is diagnosed once; a TLS mismatch will not fix itself, so it fails at once.
   */
  async #connect(url: EtcdUrl, tls: EtcdTlsMaterial | undefined, connectTimeoutMs: number): Promise<void> {
    const deadline = Date.now() + connectTimeoutMs;
    const failures = new Map<EtcdMember, unknown>();
    let diagnosed = false;
    for (;;) {
      for (const m of this.#members.all) {
        const left = deadline - Date.now();
        try {
          const r = await m.kv.range(
            { key: this.#keys.encode('\u0000probe'), limit: 1n },
            { timeoutMs: Math.max(100, Math.min(this.#timeoutMs, left)) },
          );
          this.#note(r.header);
          this.#members.use(m);
          return;
        } catch (e: unknown) {
          failures.set(m, e);
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || !diagnosed) {
        diagnosed = true;
        const diagnoses = await Promise.all(
          this.#members.all.map((m) => diagnoseEtcdEndpoint(m.endpoint, tls, DIAGNOSE_TIMEOUT_MS)),
        );
        const mismatch = diagnoses.some((d) => !d.ok && d.error.code === 'CONFIG_INVALID');
        if (left <= 0 || mismatch) throw openError(url, this.#members, diagnoses, failures);
      }
      await sleep(Math.max(1, Math.min(CONNECT_RETRY_MS, deadline - Date.now())));
    }
  }

  async get(key: string): Promise<Entry | undefined> {
    checkKey(key);
    const r = await this.#call('get', 'idempotent', (m) => m.kv.range({ key: this.#keys.encode(key) }));
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
        r = await this.#call('list', 'idempotent', (m) =>
          m.kv.range({ key: from, rangeEnd, limit: BigInt(limit), revision: BigInt(revision) }),
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
        const r = await this.#call('put', 'unsent-only', (m) => m.kv.put(put));
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
      const r = await this.#call('delete', 'unsent-only', (m) => m.kv.deleteRange({ key: k }));
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
        const r = await this.#call('lease grant', 'unsent-only', (m) =>
          m.lease.leaseGrant({ TTL: ttl, ID: BigInt(id) }),
        );
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
    const ttl = await this.#call('lease keep-alive', 'idempotent', () =>
      this.#keepAlives.keepAlive(BigInt(lease)),
    );
    if (ttl <= 0) throw leaseNotFoundError(lease);
  }

  async revokeLease(lease: number): Promise<void> {
    try {
      const r = await this.#call('lease revoke', 'idempotent', (m) =>
        m.lease.leaseRevoke({ ID: BigInt(lease) }),
      );
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
        this.#watchOn(prefix, after, options.afterRevision === undefined, options.signal),
    };
  }

  /** One etcd watch on the member in use; a lost stream moves the store to the next member. */
  async *#watchOn(
    prefix: string,
    after: number,
    afterIsNow: boolean,
    signal: AbortSignal,
  ): AsyncGenerator<WatchEvent> {
    const member = this.#member();
    try {
      yield* watchStream({
        client: member.watch,
        keys: this.#keys,
        prefix,
        after,
        afterIsNow,
        signal,
        closing: this.#closing.signal,
        target: this.#target,
        onHeader: (h) => {
          this.#note(h);
        },
      });
    } catch (e: unknown) {
      if (AgentError.is(e, 'UNAVAILABLE') && !aborted(this.#closing.signal)) this.#failed(member, e);
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    this.#closing.abort(closedError(this.description));
    this.#keepAlives.close();
    this.#members.close();
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
    return this.#call('compare-and-swap', 'unsent-only', (m) =>
      m.kv.txn({
        compare: [compare],
        success: [op],
        // On a conflict, read the key so the error can say what its revision is.
        failure: [{ request: { case: 'requestRange', value: { key } } }],
      }),
    );
  }

  /**
   * Runs a call to etcd on the member in use, turning transport failures into UNAVAILABLE with a
   * next step. A transport failure moves the store to the next member; the call is sent there too
   * when `retry` allows (each member at most once).
   */
  async #call<T>(what: string, retry: Retry, fn: (m: EtcdMember) => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError(this.description);
    let failure: unknown;
    for (let attempt = 0; attempt < this.#members.all.length; attempt++) {
      const member = this.#member();
      const call = fn(member);
      this.#inflight.add(call);
      try {
        return await call;
      } catch (e: unknown) {
        if (aborted(this.#closing.signal)) throw closedError(this.description);
        if (
          !AgentError.is(e, 'UNAVAILABLE') &&
          !AgentError.is(e, 'DEADLINE_EXCEEDED') &&
          !AgentError.is(e, 'CANCELLED')
        ) {
          throw e;
        }
        failure = e;
        this.#failed(member, e);
        // grpc-js's own words for "this call found no connection and was never sent".
        const unsent = e.code === 'UNAVAILABLE' && e.message.includes('No connection established');
        if (retry !== 'idempotent' && !unsent) break;
      } finally {
        this.#inflight.delete(call);
      }
    }
    throw new AgentError(
      'UNAVAILABLE',
      `etcd at ${this.#target} did not complete ${what}: ${describe(failure)}`,
      {
        hint: 'check that etcd is running and reachable; the call can be retried',
        cause: failure,
      },
    );
  }

  /** The member to call now (moving on first when the one in use is known to be down). */
  #member(): EtcdMember {
    const { member, switchedFrom } = this.#members.current();
    if (switchedFrom) this.#switched(switchedFrom, member, 'its connection is down');
    return member;
  }

  #failed(member: EtcdMember, e: unknown): void {
    const next = this.#members.failed(member);
    if (next) this.#switched(member, next, describe(e));
  }

  #switched(from: EtcdMember, to: EtcdMember, why: string): void {
    this.#log.warn(
      { from: from.endpoint.text, to: to.endpoint.text, reason: why },
      'etcd member failed; using the next one',
    );
    // Keep-alives waiting on the old member's stream are retried on the new one.
    this.#keepAlives.reset();
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

/** Why open() gave up, member by member, from the diagnosis when it names a cause. */
function openError(
  url: EtcdUrl,
  members: EtcdMembers,
  diagnoses: readonly EndpointDiagnosis[],
  failures: ReadonlyMap<EtcdMember, unknown>,
): AgentError {
  const reasons = members.all.map((m, i): AgentError => {
    const d = diagnoses[i];
    if (d && !d.ok) return d.error;
    // The member answers HTTP/2, so the trouble is in etcd itself (no leader, still starting …).
    return new AgentError(
      'UNAVAILABLE',
      `etcd at ${m.endpoint.text} did not answer: ${describe(failures.get(m))}`,
      {
        hint: 'check etcd’s health (etcdctl endpoint health) and its log',
        cause: failures.get(m),
      },
    );
  });
  const first = reasons.find((r) => r.code === 'CONFIG_INVALID') ?? reasons[0];
  if (first === undefined) return new AgentError('UNAVAILABLE', `cannot reach etcd at ${url.text}`);
  if (reasons.length === 1 && first.code === 'CONFIG_INVALID') return first;
  const what = reasons.length === 1 ? '' : 'any member of ';
  const verb = first.code === 'CONFIG_INVALID' ? 'cannot use' : 'cannot reach';
  return new AgentError(
    first.code,
    `${verb} ${what}etcd at ${url.text}: ${reasons.map(withoutHint).join('; ')}`,
    {
      ...(first.hint !== undefined ? { hint: first.hint } : {}),
      cause: first,
    },
  );
}

function withoutHint(e: AgentError): string {
  return e.hint === undefined ? e.message : e.message.slice(0, e.message.length - e.hint.length - 2);
}
