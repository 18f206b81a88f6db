// etcd-specific behaviour beyond the shared contract: several servers on one etcd, namespaces,
// compaction, and what callers see when etcd goes away.
import test from 'ava';
import { Buffer } from 'node:buffer';
import { KV } from '../../../src/api/etcd.js';
import { dial, insecure } from '../../../src/api/grpc/index.js';
import { EtcdStore, isCompacted } from '../../../src/store/index.js';
import type { ListResult, WatchEvent } from '../../../src/store/index.js';
import { etcdAvailable, startEtcd } from '../../helpers/etcd.js';
import type { EtcdProcess } from '../../helpers/etcd.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const keyOf = (e: WatchEvent): string => (e.type === 'put' ? e.entry.key : e.key);

let etcd: EtcdProcess | undefined;
// Compaction is global to an etcd, so the tests that compact get their own and run one at a time.
let compactable: EtcdProcess | undefined;
const extra: EtcdProcess[] = [];
test.before(async () => {
  if (!etcdAvailable()) return;
  [etcd, compactable] = await Promise.all([startEtcd(), startEtcd()]);
});
test.after.always(async () => {
  await etcd?.stop();
  await compactable?.stop();
  for (const e of extra) await e.stop();
});

const it = etcdAvailable() ? test : test.skip;
const serial = etcdAvailable() ? test.serial : test.serial.skip;

/** Collects `n` events or gives up after `ms`. */
async function collect(iterable: AsyncIterable<WatchEvent>, n: number, ac: AbortController, ms = 10_000) {
  const out: WatchEvent[] = [];
  const timer = setTimeout(() => ac.abort(), ms);
  for await (const e of iterable) {
    out.push(e);
    if (out.length >= n) break;
  }
  clearTimeout(timer);
  return out;
}

it('a watch through one server sees writes and lease expiry made through another', async (t) => {
  const a = await EtcdStore.open({ url: etcd!.url });
  const b = await EtcdStore.open({ url: etcd!.url });
  try {
    const start = await a.list('/shared/');
    const ac = new AbortController();
    const events = collect(a.watch('/shared/', { afterRevision: start.revision, signal: ac.signal }), 3, ac);
    const lease = await b.grantLease(1_000);
    await b.put('/shared/nse-1', bytes('one'));
    await b.put('/shared/nse-2', bytes('two'), { lease });
    const seen = await events;
    t.deepEqual(
      seen.map((e) => [e.type, keyOf(e)]),
      [
        ['put', '/shared/nse-1'],
        ['put', '/shared/nse-2'],
        ['delete', '/shared/nse-2'],
      ],
    );
    const del = seen[2]!;
    t.true(del.type === 'delete' && del.prev?.lease === lease, 'the expiry carries the previous entry');
    t.truthy(await a.get('/shared/nse-1'));
  } finally {
    await a.close();
    await b.close();
  }
});

it('namespaces keep meshes sharing one etcd apart', async (t) => {
  const red = await EtcdStore.open({ url: etcd!.url, namespace: '/mesh-red/' });
  const blue = await EtcdStore.open({ url: etcd!.url, namespace: '/mesh-blue/' });
  try {
    t.is(red.description, `${etcd!.url}/mesh-red/`);
    await red.put('/nse/x', bytes('red'));
    await blue.put('/nse/x', bytes('blue'));
    t.is(Buffer.from((await red.get('/nse/x'))!.value).toString(), 'red');
    t.deepEqual(
      (await blue.list('/')).entries.map((e) => [e.key, Buffer.from(e.value).toString()]),
      [['/nse/x', 'blue']],
    );
  } finally {
    await red.close();
    await blue.close();
  }
});

serial('a watch from a compacted revision fails as compacted', async (t) => {
  const store = await EtcdStore.open({ url: compactable!.url, namespace: '/compact/' });
  const conn = dial(`tcp://127.0.0.1:${compactable!.clientPort}`, {
    credentials: insecure({ allowLoopbackTcp: true }),
  });
  try {
    const first = await store.put('/k', bytes('1'));
    const last = await store.put('/k', bytes('2'));
    await conn.client(KV).compact({ revision: BigInt(last.revision) });
    const ac = new AbortController();
    const err = await t.throwsAsync(async () => {
      for await (const _ of store.watch('/', { afterRevision: first.revision - 1, signal: ac.signal })) break;
    });
    t.true(isCompacted(err), String(err));
    t.regex(err.message, /list again/);
  } finally {
    conn.close();
    await store.close();
  }
});

serial(
  'an idle client’s watch "from now" still starts after etcd compacted past what it last saw',
  async (t) => {
    const idle = await EtcdStore.open({ url: compactable!.url, namespace: '/idle/' });
    const busy = await EtcdStore.open({ url: compactable!.url, namespace: '/idle/' });
    const conn = dial(`tcp://127.0.0.1:${compactable!.clientPort}`, {
      credentials: insecure({ allowLoopbackTcp: true }),
    });
    try {
      await busy.put('/a', bytes('1'));
      const last = await busy.put('/a', bytes('2'));
      await conn.client(KV).compact({ revision: BigInt(last.revision) });
      const ac = new AbortController();
      // It restarts at the compaction revision itself (still readable): '/a' once more, then '/b'.
      const next = collect(idle.watch('/', { signal: ac.signal }), 2, ac);
      await new Promise((r) => setTimeout(r, 200));
      await busy.put('/b', bytes('3'));
      t.deepEqual(
        (await next).map((e) => [e.type, keyOf(e)]),
        [
          ['put', '/a'],
          ['put', '/b'],
        ],
      );
    } finally {
      conn.close();
      await idle.close();
      await busy.close();
    }
  },
);

it('when etcd goes away, a watch throws UNAVAILABLE and calls fail with UNAVAILABLE', async (t) => {
  const lonely = await startEtcd();
  extra.push(lonely);
  const store = await EtcdStore.open({ url: lonely.url, timeoutMs: 2_000 });
  try {
    await store.put('/k', bytes('v'));
    const ac = new AbortController();
    const watching = (async () => {
      for await (const _ of store.watch('/', { signal: ac.signal })) {
        // no events expected
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    await lonely.kill();
    const err = await t.throwsAsync(watching);
    t.is((err as { code?: string }).code, 'UNAVAILABLE', String(err));
    const put = await t.throwsAsync(store.put('/k', bytes('v2')));
    t.is((put as { code?: string }).code, 'UNAVAILABLE');
    t.regex(put.message, /check that etcd is running/);
  } finally {
    await store.close();
  }
});

test('open fails with UNAVAILABLE, in bounded time, when nothing listens', async (t) => {
  const started = Date.now();
  const err = await t.throwsAsync(EtcdStore.open({ url: 'etcd://127.0.0.1:1', connectTimeoutMs: 1_000 }));
  t.is((err as { code?: string }).code, 'UNAVAILABLE');
  t.regex(err.message, /cannot reach etcd at etcd:\/\/127\.0\.0\.1:1/);
  t.true(Date.now() - started < 5_000);
});

it('after etcd restarts, the same EtcdStore works again and a new watch resumes from a list', async (t) => {
  const bouncy = await startEtcd();
  extra.push(bouncy);
  const store = await EtcdStore.open({ url: bouncy.url, timeoutMs: 2_000 });
  try {
    await store.put('/before', bytes('1'));
    const ac = new AbortController();
    const watching = (async () => {
      for await (const _ of store.watch('/', { signal: ac.signal })) {
        // nothing is written while the watch is open
      }
    })();
    await bouncy.restart();
    t.is(((await t.throwsAsync(watching)) as { code?: string }).code, 'UNAVAILABLE');
    // grpc-js reconnects by itself (1 s first backoff); the first calls may still fail.
    let list: ListResult | undefined;
    for (let i = 0; i < 50 && !list; i++) {
      list = await store.list('/').catch(() => undefined);
      if (!list) await new Promise((r) => setTimeout(r, 200));
    }
    if (!list) throw new Error('the store did not answer again within 10 s');
    t.deepEqual(
      list.entries.map((e) => e.key),
      ['/before'],
    );
    const ac2 = new AbortController();
    const next = collect(store.watch('/', { afterRevision: list.revision, signal: ac2.signal }), 1, ac2);
    await store.put('/after', bytes('2'));
    t.deepEqual((await next).map(keyOf), ['/after']);
  } finally {
    await store.close();
  }
});
