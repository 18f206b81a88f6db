// The Store contract as tests: one suite every store runs (memory, embedded, etcd). Register it from a
// test file with registerStoreContract('embedded', factory). Each test uses its own key prefix so
// stores that share a backend (several EtcdStores on one etcd) can run tests concurrently, and it
// asserts revisions relative to what it read, never absolute numbers.
import { randomUUID } from 'node:crypto';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { MAX_VALUE_BYTES, isConflict } from '../../src/store/index.js';
import type { Entry, Store, WatchEvent } from '../../src/store/index.js';

export interface StoreContractOptions {
  /**
   * A lease TTL the store honours closely enough for the expiry tests (etcd counts whole seconds and
   * never grants less than its minimum TTL, about 2 s with default timeouts). Default 1 s: long
   * enough that timer drift on a loaded CI machine does not expire a lease between keep-alives.
   */
  readonly leaseTtlMs?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => dec.decode(b);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh prefix per test, so tests never see each other's keys. */
function space(): string {
  return `/contract/${randomUUID()}/`;
}

/** Reads `count` events from a watch, failing after `timeoutMs`. */
async function take(
  store: Store,
  prefix: string,
  count: number,
  options: { afterRevision?: number; timeoutMs?: number } = {},
): Promise<WatchEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), options.timeoutMs ?? 10_000);
  const out: WatchEvent[] = [];
  try {
    const watchOptions =
      options.afterRevision === undefined
        ? { signal: ac.signal }
        : { signal: ac.signal, afterRevision: options.afterRevision };
    for await (const e of store.watch(prefix, watchOptions)) {
      out.push(e);
      if (out.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

/** Starts a watch now and returns a function that collects `count` events from it. */
function watchNow(
  store: Store,
  prefix: string,
  timeoutMs = 10_000,
): { next: (count: number) => Promise<WatchEvent[]>; stop: () => void } {
  const ac = new AbortController();
  const iterator = store.watch(prefix, { signal: ac.signal })[Symbol.asyncIterator]();
  return {
    async next(count) {
      const out: WatchEvent[] = [];
      const deadline = Date.now() + timeoutMs;
      while (out.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        let timer: NodeJS.Timeout | undefined;
        const r = await Promise.race([
          iterator.next(),
          new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left))),
        ]);
        clearTimeout(timer);
        if (r === 'timeout' || r.done) break;
        out.push(r.value);
      }
      return out;
    },
    stop() {
      ac.abort();
    },
  };
}

function keyOf(e: WatchEvent): string {
  return e.type === 'put' ? e.entry.key : e.key;
}

/** Polls until `key` is gone; returns how long it took, or fails the test. */
async function untilGone(t: ExecutionContext, store: Store, key: string, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if ((await store.get(key)) === undefined) return;
    await sleep(50);
  }
  t.fail(`${key} still present after ${withinMs} ms`);
}

export function registerStoreContract(
  name: string,
  factory: () => Promise<Store>,
  options: StoreContractOptions = {},
): void {
  const ttl = options.leaseTtlMs ?? 1_000;
  const it = (title: string, body: (t: ExecutionContext, store: Store, p: string) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => {
      const store = await factory();
      try {
        await body(t, store, space());
      } finally {
        await store.close();
      }
    });
  };

  it('put then get returns the value and its revisions; a missing key is undefined', async (t, store, p) => {
    t.is(await store.get(`${p}missing`), undefined);
    const r1 = await store.put(`${p}a`, bytes('one'));
    const e1 = await store.get(`${p}a`);
    t.truthy(e1);
    t.is(text(e1!.value), 'one');
    t.is(e1!.modRevision, r1.revision);
    t.is(e1!.createRevision, r1.revision);
    t.is(e1!.lease, 0);
    const r2 = await store.put(`${p}a`, bytes('two'));
    t.true(r2.revision > r1.revision);
    const e2 = await store.get(`${p}a`);
    t.is(text(e2!.value), 'two');
    t.is(e2!.modRevision, r2.revision);
    t.is(e2!.createRevision, r1.revision, 'createRevision stays until the key is deleted');
    const mine = bytes('mine');
    await store.put(`${p}b`, mine);
    mine[0] = 0x4d;
    t.is(text((await store.get(`${p}b`))!.value), 'mine', 'put keeps its own copy of the value');
    // A Buffer too: Buffer#slice makes a view, not a copy.
    const pooled = Buffer.from('pooled');
    await store.put(`${p}c`, pooled);
    pooled[0] = 0x50;
    t.is(text((await store.get(`${p}c`))!.value), 'pooled', 'put keeps its own copy of a Buffer value');
  });

  it('list returns the keys under a prefix in byte order, with the revision it read at', async (t, store, p) => {
    const names = ['b', 'a/2', 'a', 'c', 'a/1', 'B', 'a\u00e9', 'ab'];
    let last = 0;
    for (const n of names) last = (await store.put(`${p}${n}`, bytes(n))).revision;
    await store.put(`${p.slice(0, -1)}x`, bytes('outside the prefix'));
    const list = await store.list(p);
    const expected = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    t.deepEqual(
      list.entries.map((e) => e.key.slice(p.length)),
      expected,
    );
    t.deepEqual(
      list.entries.map((e) => text(e.value)),
      expected,
    );
    t.true(list.revision >= last + 1);
    t.deepEqual(
      (await store.list(`${p}a/`)).entries.map((e) => e.key.slice(p.length)),
      ['a/1', 'a/2'],
    );
    t.deepEqual((await store.list(`${p}zzz`)).entries, []);
  });

  it('delete removes a key and says whether it was there', async (t, store, p) => {
    const put = await store.put(`${p}k`, bytes('v'));
    const del = await store.delete(`${p}k`);
    t.true(del.deleted);
    t.true(del.revision > put.revision);
    t.is(await store.get(`${p}k`), undefined);
    const again = await store.delete(`${p}k`);
    t.false(again.deleted);
    t.true(again.revision >= del.revision);
    const re = await store.put(`${p}k`, bytes('v2'));
    t.is((await store.get(`${p}k`))!.createRevision, re.revision, 'a re-created key starts a new life');
  });

  it('CAS create-only: ifModRevision 0 succeeds once, then conflicts', async (t, store, p) => {
    const first = await store.put(`${p}k`, bytes('first'), { ifModRevision: 0 });
    const err = await t.throwsAsync(store.put(`${p}k`, bytes('second'), { ifModRevision: 0 }));
    t.true(isConflict(err), String(err));
    const e = await store.get(`${p}k`);
    t.is(text(e!.value), 'first');
    t.is(e!.modRevision, first.revision);
  });

  it('CAS update: the current modRevision wins, a stale one conflicts and changes nothing', async (t, store, p) => {
    const r1 = await store.put(`${p}k`, bytes('1'));
    const r2 = await store.put(`${p}k`, bytes('2'), { ifModRevision: r1.revision });
    const stale = await t.throwsAsync(store.put(`${p}k`, bytes('3'), { ifModRevision: r1.revision }));
    t.true(isConflict(stale));
    t.is(text((await store.get(`${p}k`))!.value), '2');
    const missing = await t.throwsAsync(store.put(`${p}none`, bytes('x'), { ifModRevision: r2.revision }));
    t.true(isConflict(missing), 'updating a missing key conflicts');
    t.is(await store.get(`${p}none`), undefined);
  });

  it('CAS delete: conflicts on a stale or missing key, succeeds on the current revision', async (t, store, p) => {
    const r1 = await store.put(`${p}k`, bytes('1'));
    const r2 = await store.put(`${p}k`, bytes('2'));
    t.true(isConflict(await t.throwsAsync(store.delete(`${p}k`, { ifModRevision: r1.revision }))));
    t.truthy(await store.get(`${p}k`));
    const del = await store.delete(`${p}k`, { ifModRevision: r2.revision });
    t.true(del.deleted);
    t.true(isConflict(await t.throwsAsync(store.delete(`${p}k`, { ifModRevision: r2.revision }))));
  });

  it('20 parallel CAS incrementers of one counter end at exactly 20', async (t, store, p) => {
    const key = `${p}counter`;
    await store.put(key, bytes('0'), { ifModRevision: 0 });
    let conflicts = 0;
    const increment = async (): Promise<void> => {
      for (let attempt = 0; attempt < 500; attempt++) {
        const cur = await store.get(key);
        const n = Number(text(cur!.value));
        try {
          await store.put(key, bytes(String(n + 1)), { ifModRevision: cur!.modRevision });
          return;
        } catch (e: unknown) {
          if (!isConflict(e)) throw e;
          conflicts++;
        }
      }
      throw new Error('no progress after 500 attempts');
    };
    await Promise.all(Array.from({ length: 20 }, increment));
    t.is(text((await store.get(key))!.value), '20');
    t.log(`${conflicts} conflicts retried`);
  });

  it('a lease that expires deletes its keys, with delete events', async (t, store, p) => {
    const lease = await store.grantLease(ttl);
    await store.put(`${p}a`, bytes('a'), { lease });
    await store.put(`${p}b`, bytes('b'), { lease });
    const last = await store.put(`${p}stays`, bytes('s'));
    t.is((await store.get(`${p}a`))!.lease, lease);
    const events = take(store, p, 2, { afterRevision: last.revision, timeoutMs: ttl + 10_000 });
    await untilGone(t, store, `${p}a`, ttl + 10_000);
    t.is(await store.get(`${p}b`), undefined);
    t.truthy(await store.get(`${p}stays`));
    const seen = await events;
    t.deepEqual(seen.map((e) => [e.type, keyOf(e)]).sort(), [
      ['delete', `${p}a`],
      ['delete', `${p}b`],
    ]);
    const notFound = await t.throwsAsync(store.keepAlive(lease));
    t.is((notFound as { code?: string }).code, 'NOT_FOUND');
  });

  it('keepAlive extends a lease by its TTL', async (t, store, p) => {
    const lease = await store.grantLease(ttl);
    await store.put(`${p}k`, bytes('v'), { lease });
    for (let i = 0; i < 3; i++) {
      await sleep(ttl * 0.6);
      await store.keepAlive(lease);
    }
    // 1.8 TTLs after the grant: without the keep-alives the key would be gone.
    t.truthy(await store.get(`${p}k`));
    await untilGone(t, store, `${p}k`, ttl + 10_000);
  });

  it('revoking a lease deletes its keys at once; revoking again does nothing', async (t, store, p) => {
    const lease = await store.grantLease(60_000);
    await store.put(`${p}k`, bytes('v'), { lease });
    const w = watchNow(store, p);
    await store.revokeLease(lease);
    t.is(await store.get(`${p}k`), undefined);
    const seen = await w.next(1);
    w.stop();
    t.deepEqual(
      seen.map((e) => [e.type, keyOf(e)]),
      [['delete', `${p}k`]],
    );
    await t.notThrowsAsync(store.revokeLease(lease));
    const err = await t.throwsAsync(store.put(`${p}k2`, bytes('v'), { lease }));
    t.is((err as { code?: string }).code, 'NOT_FOUND', 'a put on a revoked lease fails');
  });

  it('a put without a lease detaches the key from its old lease', async (t, store, p) => {
    const lease = await store.grantLease(60_000);
    await store.put(`${p}k`, bytes('v'), { lease });
    await store.put(`${p}k`, bytes('v2'));
    await store.revokeLease(lease);
    t.is(text((await store.get(`${p}k`))!.value), 'v2');
  });

  it('watch from a list revision sees every later put and delete, in revision order', async (t, store, p) => {
    await store.put(`${p}before`, bytes('0'));
    const list = await store.list(p);
    t.is(list.entries.length, 1);
    // Writes land between the list and the watch: none may be missed.
    await store.put(`${p}a`, bytes('1'));
    await store.put(`${p.slice(0, -1)}-other`, bytes('not ours'));
    await store.put(`${p}b`, bytes('2'));
    await store.delete(`${p}a`);
    await store.put(`${p}b`, bytes('3'));
    const seen = await take(store, p, 4, { afterRevision: list.revision });
    t.deepEqual(
      seen.map((e) => [e.type, keyOf(e), e.type === 'put' ? text(e.entry.value) : '']),
      [
        ['put', `${p}a`, '1'],
        ['put', `${p}b`, '2'],
        ['delete', `${p}a`, ''],
        ['put', `${p}b`, '3'],
      ],
    );
    for (let i = 1; i < seen.length; i++) t.true(seen[i]!.revision > seen[i - 1]!.revision);
    t.true(seen[0]!.revision > list.revision);
    const put = seen[3]!;
    t.true(put.type === 'put' && put.entry.modRevision === put.revision);
  });

  it('watch without afterRevision sees only changes after it started', async (t, store, p) => {
    await store.put(`${p}old`, bytes('old'));
    const w = watchNow(store, p);
    await store.put(`${p}new`, bytes('new'));
    const seen = await w.next(1);
    w.stop();
    t.deepEqual(
      seen.map((e) => keyOf(e)),
      [`${p}new`],
    );
  });

  it('watch ends when its signal aborts, also while waiting', async (t, store, p) => {
    const ac = new AbortController();
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const e of store.watch(p, { signal: ac.signal })) seen.push(e);
    })();
    await sleep(50);
    ac.abort();
    const ended = await Promise.race([done.then(() => true), sleep(5_000).then(() => false)]);
    t.true(ended, 'the iterator ended after abort');
    t.deepEqual(seen, []);
  });

  it('close lets writes in flight finish', async (t, store, p) => {
    const writes = Array.from({ length: 20 }, (_, i) => store.put(`${p}${i}`, bytes(String(i))));
    await store.close();
    const results = await Promise.allSettled(writes);
    t.deepEqual(
      results.map((r) => r.status),
      writes.map(() => 'fulfilled'),
    );
  });

  it('closing the store ends its watches with UNAVAILABLE and refuses further calls', async (t, store, p) => {
    const ac = new AbortController();
    const watching = (async () => {
      for await (const _ of store.watch(p, { signal: ac.signal })) {
        // nothing is written
      }
    })();
    await sleep(100);
    await store.close();
    const ended = await Promise.race([
      watching.then(
        () => 'returned',
        (e: unknown) => (e as { code?: string }).code ?? 'error',
      ),
      sleep(5_000).then(() => 'still running'),
    ]);
    ac.abort();
    t.is(ended, 'UNAVAILABLE');
    const err = await t.throwsAsync(store.get(`${p}k`));
    t.is((err as { code?: string }).code, 'UNAVAILABLE');
  });

  it('values up to the size limit round-trip byte for byte; larger ones are refused', async (t, store, p) => {
    const big = new Uint8Array(MAX_VALUE_BYTES);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    await store.put(`${p}big`, big);
    const e = await store.get(`${p}big`);
    t.is(e!.value.length, big.length);
    t.true(Buffer.from(e!.value).equals(Buffer.from(big)));
    const empty = await store.put(`${p}empty`, new Uint8Array(0));
    t.is((await store.get(`${p}empty`))!.modRevision, empty.revision);
    const err = await t.throwsAsync(store.put(`${p}huge`, new Uint8Array(MAX_VALUE_BYTES + 1)));
    t.is((err as { code?: string }).code, 'INVALID_ARGUMENT');
  });

  it('unicode keys round-trip and sort by UTF-8 bytes', async (t, store, p) => {
    const names = ['\u{1F600}', '\uE000', 'z', '\u00fc', 'ключ', '\u6f22\u5b57'];
    for (const n of names) await store.put(`${p}${n}`, bytes(n));
    const list = await store.list(p);
    const expected = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    t.deepEqual(
      list.entries.map((e: Entry) => e.key.slice(p.length)),
      expected,
    );
    t.is(text((await store.get(`${p}\u{1F600}`))!.value), '\u{1F600}');
    const seen = watchNow(store, `${p}\u00fc`);
    await store.delete(`${p}\u00fc`);
    const ev = await seen.next(1);
    seen.stop();
    t.deepEqual(ev.map(keyOf), [`${p}\u00fc`]);
  });
}
