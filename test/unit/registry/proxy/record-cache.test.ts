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
