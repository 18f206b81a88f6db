import test from 'ava';
import { RecordCache } from '../../../../src/registry/proxy/record-cache.js';

interface Rec {
  readonly name: string;
  readonly v: number;
}

test('resync drops what vanished while away, keeps what the listing or the new watch reported', (t) => {
  const cache = new RecordCache<Rec>();
  const seen: string[] = [];
  cache.subscribe((r, deleted) => seen.push(`${deleted ? '-' : '+'}${r.name}`));
  cache.upsert({ name: 'a', v: 1 });
  cache.upsert({ name: 'b', v: 1 });
  cache.upsert({ name: 'c', v: 1 });
  cache.upsert({ name: 'd', v: 1 });
  cache.beginResync();
  cache.upsert({ name: 'c', v: 2 }); // the new watch saw c (registered again after the listing)
  cache.remove('d'); // and d's deletion
  cache.endResync(['a']); // the listing had only a
  t.deepEqual([...cache.values()].map((r) => `${r.name}${r.v}`).sort(), ['a1', 'c2']);
  t.deepEqual(seen, ['+a', '+b', '+c', '+d', '+c', '-d', '-b']);
});

test('removing an unknown name tells nobody', (t) => {
  const cache = new RecordCache<Rec>();
  let n = 0;
  const off = cache.subscribe(() => n++);
  cache.remove('x');
  cache.upsert({ name: 'x', v: 1 });
  off();
  cache.remove('x');
  t.is(n, 1);
  t.is(cache.size, 0);
});

test('the index finds records by key through upserts that change their keys, removes and resyncs', (t) => {
  interface Svc {
    readonly name: string;
    readonly services: readonly string[];
  }
  const cache = new RecordCache<Svc>({ indexBy: (r) => r.services });
  const names = (key: string): string[] =>
    cache
      .withKey(key)
      .map((r) => r.name)
      .sort();
  cache.upsert({ name: 'e1', services: ['web'] });
  cache.upsert({ name: 'e2', services: ['web', 'db'] });
  cache.upsert({ name: 'e3', services: ['db'] });
  t.deepEqual(names('web'), ['e1', 'e2']);
  t.deepEqual(names('db'), ['e2', 'e3']);
  cache.upsert({ name: 'e2', services: ['cache'] }); // e2 now offers only cache
  t.deepEqual(names('web'), ['e1']);
  t.deepEqual(names('db'), ['e3']);
  t.deepEqual(names('cache'), ['e2']);
  t.is(cache.withKey('cache')[0]?.services[0], 'cache', 'the record as last upserted');
  cache.remove('e1');
  t.deepEqual(names('web'), []);
  cache.beginResync();
  cache.endResync(['e2']); // e3 vanished while away
  t.deepEqual(names('db'), []);
  t.deepEqual(names('cache'), ['e2']);
  t.deepEqual(new RecordCache<Svc>().withKey('web'), [], 'no index: nothing by key');
});
