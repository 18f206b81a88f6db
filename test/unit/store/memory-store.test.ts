import test from 'ava';
import { FakeClock } from '../../../src/host/fake/index.js';
import { MemoryStore, isCompacted, isConflict } from '../../../src/store/index.js';
import type { WatchEvent } from '../../../src/store/index.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('leases expire on the fake clock and delete their keys with events', async (t) => {
  const clock = new FakeClock(0);
  const store = new MemoryStore({ clock });
  const lease = await store.grantLease(1_000);
  await store.put('/a', bytes('1'), { lease });
  const ac = new AbortController();
  const seen: WatchEvent[] = [];
  const done = (async () => {
    for await (const e of store.watch('/', { signal: ac.signal })) seen.push(e);
  })();
  await clock.advance(999);
  t.truthy(await store.get('/a'));
  await clock.advance(1);
  t.is(await store.get('/a'), undefined);
  ac.abort();
  await done;
  t.deepEqual(
    seen.map((e) => [e.type, e.revision]),
    [['delete', 2]],
  );
  await t.throwsAsync(store.keepAlive(lease), { code: 'NOT_FOUND' } as never);
  await store.close();
});

test('CAS conflicts and compacted history are told apart', async (t) => {
  const store = new MemoryStore({ historyLimit: 2 });
  await store.put('/k', bytes('a'), { ifModRevision: 0 });
  const e = await t.throwsAsync(store.put('/k', bytes('b'), { ifModRevision: 0 }));
  t.true(isConflict(e));
  await store.put('/k', bytes('c'));
  await store.put('/k', bytes('d'));
  const ac = new AbortController();
  const err = await t.throwsAsync(async () => {
    for await (const _ of store.watch('/', { afterRevision: 0, signal: ac.signal })) break;
  });
  t.true(isCompacted(err));
  await store.close();
});
