import test from 'ava';
import { NetworkServiceEndpointSchema, create, toBinary } from '../../../src/api/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { streamFind } from '../../../src/registry/find-stream.js';
import { RecordSet } from '../../../src/registry/record-set.js';
import { RecordView } from '../../../src/registry/record-view.js';
import type { ViewEvent } from '../../../src/registry/record-view.js';
import { MemoryStore } from '../../../src/store/index.js';
import type { Store, WatchEvent } from '../../../src/store/index.js';

const nse = (name: string, url = 'tcp://10.0.0.1:1') => create(NetworkServiceEndpointSchema, { name, url });

/** A store whose watches can be broken on demand, as a lost etcd connection breaks them. */
function breakableStore(inner: Store): { store: Store; breakWatches: () => void } {
  const controllers = new Set<() => void>();
  const store: Store = {
    description: inner.description,
    get: (k) => inner.get(k),
    list: (p) => inner.list(p),
    put: (k, v, o) => inner.put(k, v, o),
    delete: (k, o) => inner.delete(k, o),
    grantLease: (ttl) => inner.grantLease(ttl),
    keepAlive: (l) => inner.keepAlive(l),
    revokeLease: (l) => inner.revokeLease(l),
    close: () => inner.close(),
    watch(prefix, options) {
      const broken = new AbortController();
      const both = AbortSignal.any([options.signal, broken.signal]);
      const it = inner.watch(prefix, {
        ...(options.afterRevision === undefined ? {} : { afterRevision: options.afterRevision }),
        signal: both,
      });
      return {
        async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent> {
          const fail = (): void => {
            broken.abort();
          };
          controllers.add(fail);
          try {
            for await (const ev of it) yield ev;
          } finally {
            controllers.delete(fail);
          }
          if (broken.signal.aborted && !options.signal.aborted) {
            throw new AgentError('UNAVAILABLE', 'store connection lost');
          }
        },
      };
    },
  };
  return {
    store,
    breakWatches: () => {
      for (const c of [...controllers]) c();
    },
  };
}

async function until(cond: () => boolean, clock?: FakeClock): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) {
    if (clock) await clock.advance(100);
    else await new Promise((r) => setTimeout(r, 5));
  }
}

test('the view follows the store, and after a broken watch it lists again and reports what changed meanwhile', async (t) => {
  const clock = new FakeClock(Date.now());
  const mem = new MemoryStore({ clock });
  const { store, breakWatches } = breakableStore(mem);
  const records = new RecordSet(store, NetworkServiceEndpointSchema, '/r/nse/', silentLogger());
  const view = new RecordView(records, clock, silentLogger());
  t.teardown(() => view.close());
  await records.put('a', nse('a'));
  await records.put('b', nse('b'));
  await view.ready();
  t.is(view.size, 2);
  const events: ViewEvent<ReturnType<typeof nse>>[] = [];
  view.subscribe((e) => events.push(e));

  await view.caughtUp(await records.put('c', nse('c')));
  t.deepEqual(
    events.map((e) => `${e.deleted ? '-' : '+'}${e.record.name}`),
    ['+c'],
  );

  breakWatches();
  // While the view is not watching: one delete, one update.
  await mem.delete('/r/nse/a');
  await mem.put('/r/nse/b', toBinary(NetworkServiceEndpointSchema, nse('b', 'tcp://10.0.0.2:1')));
  events.length = 0;
  await until(() => events.length >= 3, clock);
  const seen = events.map((e) => `${e.deleted ? '-' : '+'}${e.record.name}`).sort();
  t.true(seen.includes('-a'), seen.join(','));
  t.true(seen.includes('+b') && seen.includes('+c'));
  t.is(view.get('a'), undefined);
  t.is(view.get('b')?.url, 'tcp://10.0.0.2:1');
  t.is(view.size, 2);
});

test('a watcher that falls too far behind is ended with RESOURCE_EXHAUSTED, not buffered without end', async (t) => {
  const clock = new FakeClock(Date.now());
  const store = new MemoryStore({ clock });
  const records = new RecordSet(store, NetworkServiceEndpointSchema, '/r/nse/', silentLogger());
  const view = new RecordView(records, clock, silentLogger());
  t.teardown(() => view.close());
  await view.ready();
  let release: (() => void) | undefined;
  const stuck = new Promise<void>((r) => (release = r));
  let sent = 0;
  const ac = new AbortController();
  const find = streamFind(view, {
    watch: true,
    exactName: undefined,
    matches: () => true,
    send: async () => {
      sent++;
      await stuck; // a client that never reads
    },
    signal: ac.signal,
    maxBacklog: 3,
  });
  for (let i = 0; i < 6; i++) await view.caughtUp(await records.put(`n${i}`, nse(`n${i}`)));
  release?.();
  const e = await t.throwsAsync(find, { instanceOf: AgentError });
  t.is(e.code, 'RESOURCE_EXHAUSTED');
  t.regex(e.message, /fell more than 3 changes behind/);
  t.true(sent >= 1);
});
