import { Buffer } from 'node:buffer';
import { mkdir, open, readFile, truncate, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AgentError, describe } from '../errors/index.js';
import type { Clock } from '../host/index.js';
import { systemClock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import { silentLogger } from '../log/index.js';
import { acquireDirLock } from './embedded/data-dir-lock.js';
import type { DirLock } from './embedded/data-dir-lock.js';
import { frame, scanFrames } from './embedded/frame.js';
import { fsyncDir } from './embedded/fsync-dir.js';
import { GroupCommit } from './embedded/group-commit.js';
import { LOG_MAGIC, LogWriter, isUnstartedLog, listLogs, logFileName } from './embedded/log-file.js';
import { decodeRecord, encodeRecord } from './embedded/log-record.js';
import { readSnapshot, writeSnapshot } from './embedded/snapshot-file.js';
import { KvState } from './kv-state.js';
import type { Mutation } from './kv-state.js';
import { LeaseTimers } from './lease-timers.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, checkKey, checkRevision, checkTtl, checkValue } from './limits.js';
import { leaseNotFoundError } from './store-errors.js';
import type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';
import { WatchHistory } from './watch-history.js';

export interface EmbeddedStoreOptions {
  /** The data directory; created (mode 0700) if missing. */
  readonly dir: string;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Changes kept for watch replay (default 10,000). */
  readonly historyLimit?: number;
  /** Log bytes after which a snapshot is written and older logs are removed (default 64 MiB). */
  readonly compactAfterBytes?: number;
}

/** A logged change on its way to disk, and the watch events it releases once durable. */
interface Pending {
  readonly frame: Buffer;
  readonly events: readonly WatchEvent[];
}

const MAX_RECORD_BYTES = MAX_KEY_BYTES + MAX_VALUE_BYTES + 64;

/**
 * The default store: no extra process, a data directory holding a snapshot and an append-only log
 * of changes (CRC-checked frames). Every change is applied in memory at once (so compare-and-swap
 * is decided in one place, in order) and acknowledged only after its record is fsynced; concurrent
 * changes share one fsync (group commit). Watchers see a change only once it is durable, so nothing
 * a watcher saw can be lost by a crash. Reads see applied changes, durable or about to be.
 *
 * Files: `snapshot` (state up to record `lastSeq`, replay continues at log `firstLog`), `log-N`
 * (records numbered without gaps), `lock` (the owner's pid). Compaction switches to a new log, then
 * writes the snapshot aside, fsyncs, renames it into place, fsyncs the directory and deletes the
 * older logs; a crash at any point leaves a snapshot plus logs that replay to the same state.
 */
export class EmbeddedStore implements Store {
  readonly description: string;
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #compactAfterBytes: number;
  readonly #historyLimit: number;
  readonly #commits: GroupCommit<Pending>;
  #state = new KvState();
  #history: WatchHistory;
  readonly #timers: LeaseTimers;
  #lock: DirLock | undefined;
  #file: LogWriter | undefined;
  #gen = 1;
  #seq = 0;
  #logBytes = 0;
  /** Where writing continues in the newest log after replay; undefined: start that log afresh. */
  #resumeAt: number | undefined;
  #compaction: Promise<void> | undefined;
  #failed: AgentError | undefined;
  #closed = false;

  /** Opens (or creates) the store in `options.dir`: locks it, loads the snapshot, replays the logs. */
  static async open(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const store = new EmbeddedStore(options);
    await store.#open();
    return store;
  }

  private constructor(options: EmbeddedStoreOptions) {
    this.#dir = resolve(options.dir);
    this.description = `embedded:${this.#dir}`;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'store', store: this.description });
    this.#compactAfterBytes = options.compactAfterBytes ?? 64 * 1024 * 1024;
    this.#historyLimit = options.historyLimit ?? 10_000;
    this.#history = new WatchHistory({ limit: this.#historyLimit, startRevision: 0 });
    this.#commits = new GroupCommit((items) => this.#flush(items));
    this.#timers = new LeaseTimers(this.#clock, (id) => {
      this.#expire(id);
    });
  }

  get(key: string): Promise<Entry | undefined> {
    return this.#sync(() => {
      checkKey(key);
      return this.#state.get(key);
    });
  }

  list(prefix: string): Promise<ListResult> {
    return this.#sync(() => ({
      entries: this.#state.list(prefix),
      revision: this.#state.revision,
    }));
  }

  async put(
    key: string,
    value: Uint8Array,
    options: PutOptions = {},
  ): Promise<{ readonly revision: number }> {
    this.#usable();
    checkKey(key);
    checkValue(value);
    if (options.ifModRevision !== undefined) checkRevision(options.ifModRevision, 'ifModRevision');
    const lease = options.lease ?? 0;
    this.#state.checkPut(key, options.ifModRevision, lease);
    // A copy of exactly these bytes: Buffer#slice is a view, and a view of a small pooled Buffer
    // would keep its whole 8 KiB pool slab alive for as long as the key lives (~20 MB at 10k NSEs).
    const durable = this.#commit({ op: 'put', key, value: new Uint8Array(value), lease });
    const revision = this.#state.revision;
    await durable;
    return { revision };
  }

  async delete(
    key: string,
    options: DeleteOptions = {},
  ): Promise<{ readonly revision: number; readonly deleted: boolean }> {
    this.#usable();
    checkKey(key);
    if (options.ifModRevision !== undefined) checkRevision(options.ifModRevision, 'ifModRevision');
    if (!this.#state.checkDelete(key, options.ifModRevision)) {
      return { revision: this.#state.revision, deleted: false };
    }
    const durable = this.#commit({ op: 'delete', key });
    const revision = this.#state.revision;
    await durable;
    return { revision, deleted: true };
  }

  async grantLease(ttlMs: number): Promise<number> {
    this.#usable();
    checkTtl(ttlMs);
    const id = this.#state.nextLeaseId;
    const expiresAt = this.#clock.now() + ttlMs;
    const durable = this.#commit({ op: 'grant', lease: id, ttlMs, expiresAt });
    this.#timers.arm(id, expiresAt);
    await durable;
    return id;
  }

  async keepAlive(lease: number): Promise<void> {
    this.#usable();
    const l = this.#state.lease(lease);
    if (!l) throw leaseNotFoundError(lease);
    if (l.expiresAt <= this.#clock.now()) {
      this.#expire(lease);
      throw leaseNotFoundError(lease);
    }
    const expiresAt = this.#clock.now() + l.ttlMs;
    const durable = this.#commit({ op: 'keepalive', lease, expiresAt });
    this.#timers.arm(lease, expiresAt);
    await durable;
  }

  async revokeLease(lease: number): Promise<void> {
    this.#usable();
    this.#timers.disarm(lease);
    if (!this.#state.lease(lease)) return;
    await this.#commit({ op: 'revoke', lease });
  }

  watch(
    prefix: string,
    options: { readonly afterRevision?: number; readonly signal: AbortSignal },
  ): AsyncIterable<WatchEvent> {
    this.#usable();
    if (options.afterRevision !== undefined) checkRevision(options.afterRevision, 'afterRevision');
    return this.#history.watch(prefix, options.afterRevision, options.signal);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timers.clear();
    await this.#commits.idle();
    await this.#compaction;
    this.#history.close(
      new AgentError('UNAVAILABLE', `the store ${this.description} is closed`, {
        hint: 'open it again; it was closed by its owner',
      }),
    );
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
    await this.#lock?.release();
    this.#lock = undefined;
  }

  async #open(): Promise<void> {
    const dir = this.#dir;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e: unknown) {
      throw AgentError.wrap(e, 'UNAVAILABLE', `cannot create the store directory ${dir}`, 'check its parent');
    }
    this.#lock = await acquireDirLock(dir);
    try {
      await this.#load();
    } catch (e: unknown) {
      await this.#file?.close().catch(() => undefined);
      await this.#lock.release();
      throw e;
    }
  }

  async #load(): Promise<void> {
    const dir = this.#dir;
    const snap = await readSnapshot(dir);
    this.#state = snap ? KvState.fromSnapshot(snap.state) : new KvState();
    this.#seq = snap?.lastSeq ?? 0;
    const first = snap?.firstLog ?? 1;
    const gens = await listLogs(dir);
    for (const g of gens.filter((g) => g < first)) await unlink(join(dir, logFileName(g)));
    const live = gens.filter((g) => g >= first);
    live.forEach((g, i) => {
      if (g !== first + i) {
        throw corrupt(join(dir, logFileName(first + i)), 'it is missing while later logs exist');
      }
    });
    for (const [i, g] of live.entries()) await this.#replay(g, i === live.length - 1);
    const last = live[live.length - 1];
    if (last === undefined) {
      this.#gen = first;
      this.#file = await LogWriter.create(dir, first);
    } else {
      this.#gen = last;
      this.#file =
        this.#resumeAt === undefined
          ? await LogWriter.create(dir, last)
          : await LogWriter.resume(join(dir, logFileName(last)), this.#resumeAt);
    }
    this.#logBytes = this.#file.position - LOG_MAGIC.length;
    this.#history = new WatchHistory({ limit: this.#historyLimit, startRevision: this.#state.revision });
    const now = this.#clock.now();
    for (const l of [...this.#state.leases()]) {
      if (l.expiresAt <= now) this.#expire(l.id);
      else this.#timers.arm(l.id, l.expiresAt);
    }
    await this.#commits.idle();
    if (this.#failed) throw this.#failed;
    this.#log.info(
      { revision: this.#state.revision, keys: this.#state.size, log: logFileName(this.#gen) },
      'store opened',
    );
  }

  /** Applies the records of log `gen`; a bad tail of the newest log is cut off with a warning. */
  async #replay(gen: number, newest: boolean): Promise<void> {
    const path = join(this.#dir, logFileName(gen));
    const buf = await readFile(path);
    if (newest && isUnstartedLog(buf)) {
      // A crash while this log was being created: nothing in it was ever acknowledged.
      this.#log.warn({ file: path }, 'store log was cut short while being created; starting it again');
      this.#resumeAt = undefined;
      return;
    }
    if (!buf.subarray(0, LOG_MAGIC.length).equals(LOG_MAGIC)) throw corrupt(path, 'its header is wrong');
    const scan = scanFrames(buf, LOG_MAGIC.length, MAX_RECORD_BYTES);
    let valid = LOG_MAGIC.length;
    let stop: string | undefined = scan.stop;
    for (const payload of scan.payloads) {
      let applied = false;
      try {
        const rec = decodeRecord(payload);
        if (rec.seq <= this.#seq) {
          applied = true;
        } else if (rec.seq === this.#seq + 1) {
          this.#state.apply(rec.mutation);
          this.#seq = rec.seq;
          applied = true;
        } else {
          stop = `record ${this.#seq + 1} is missing (found ${rec.seq})`;
        }
      } catch (e: unknown) {
        stop = `unreadable record (${describe(e)})`;
      }
      if (!applied) break;
      valid += 8 + payload.length;
    }
    if (stop !== undefined) {
      if (!newest) throw corrupt(path, `it is damaged at byte ${valid} (${stop}) and newer logs follow`);
      await this.#cut(path, valid, buf.length, stop);
    }
    if (newest) this.#resumeAt = valid;
  }

  async #cut(path: string, valid: number, size: number, why: string): Promise<void> {
    this.#log.warn(
      { file: path, validBytes: valid, droppedBytes: size - valid, reason: why },
      'store log ends in a torn or damaged record (a crash mid-write, or disk damage); dropping the tail',
    );
    await truncate(path, valid);
    const fh = await open(path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Applies `m` now (in order with every other change) and resolves once its record is durable. */
  #commit(m: Mutation): Promise<void> {
    const seq = ++this.#seq;
    const events = this.#state.apply(m);
    return this.#commits.submit({ frame: frame(encodeRecord({ seq, mutation: m })), events });
  }

  async #flush(items: readonly Pending[]): Promise<void> {
    if (this.#failed) throw this.#failed;
    try {
      if (this.#logBytes >= this.#compactAfterBytes && !this.#compaction) await this.#startCompaction();
      const file = this.#file;
      if (!file) throw new Error('no log file is open');
      const buf = items.length === 1 ? (items[0] as Pending).frame : Buffer.concat(items.map((i) => i.frame));
      await file.append(buf);
      this.#logBytes += buf.length;
    } catch (e: unknown) {
      // What reached the disk is unknown now, and memory is ahead of it: stop accepting changes.
      this.#failed = AgentError.wrap(
        e,
        'UNAVAILABLE',
        `the store in ${this.#dir} could not write its log`,
        'fix the disk (full? read-only? failing?) and restart the server; acknowledged data is safe',
      );
      this.#log.error({ err: describe(e) }, 'store log write failed; the store stops accepting changes');
      throw this.#failed;
    }
    for (const i of items) this.#history.append(i.events);
  }

  /**
   * Switches to a new log and writes a snapshot of the state so far in the background. Called
   * between flushes, so the old log is complete and durable; records already applied but still
   * queued carry sequence numbers ≤ the snapshot's and are skipped when the new log is replayed.
   */
  async #startCompaction(): Promise<void> {
    const state = this.#state.toSnapshot();
    const lastSeq = this.#seq;
    const gen = this.#gen + 1;
    const next = await LogWriter.create(this.#dir, gen);
    const old = this.#file;
    this.#file = next;
    this.#gen = gen;
    this.#logBytes = 0;
    await old?.close();
    const started = this.#clock.now();
    this.#compaction = (async () => {
      try {
        await writeSnapshot(this.#dir, { firstLog: gen, lastSeq, state });
        for (const g of await listLogs(this.#dir)) {
          if (g < gen) await unlink(join(this.#dir, logFileName(g)));
        }
        await fsyncDir(this.#dir);
        this.#log.info(
          { revision: state.revision, keys: state.entries.length, ms: this.#clock.now() - started },
          'store compacted',
        );
      } catch (e: unknown) {
        // The previous snapshot and the logs still hold everything; the next compaction retries.
        this.#log.warn({ err: describe(e) }, 'store snapshot failed; keeping the logs');
      } finally {
        this.#compaction = undefined;
      }
    })();
  }

  #expire(id: number): void {
    if (this.#closed || this.#failed) return;
    const l = this.#state.lease(id);
    if (!l) return;
    if (l.expiresAt > this.#clock.now()) {
      this.#timers.arm(id, l.expiresAt);
      return;
    }
    this.#timers.disarm(id);
    this.#commit({ op: 'revoke', lease: id }).catch((e: unknown) => {
      this.#log.error({ lease: id, err: describe(e) }, 'store could not record a lease expiry');
    });
  }

  #usable(): void {
    if (this.#failed) throw this.#failed;
    if (this.#closed || !this.#file) {
      throw new AgentError('UNAVAILABLE', `the store ${this.description} is closed`, {
        hint: 'open it again; it was closed by its owner',
      });
    }
  }

  #sync<T>(op: () => T): Promise<T> {
    try {
      this.#usable();
      return Promise.resolve(op());
    } catch (e: unknown) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

function corrupt(path: string, what: string): AgentError {
  return new AgentError('FAILED_PRECONDITION', `the store log ${path} is corrupt: ${what}`, {
    hint:
      'restore the data directory from a backup; or, to start over with an empty store ' +
      '(every host must enrol again), move the directory away',
    details: { file: path },
  });
}
